// The WebGPU backend's kernels other than the GEMM and attention: element-wise, rows and
// columns, norms, activations, rope, embedding, cross-entropy, optimizers, patches, masks
// and the accumulator sums (docs/ARCHITECTURE.md §WebGPU). Each mirrors its reference twin
// in src/backend/ref/ (the comment above each Backend method in backend/types.ts gives the
// shapes). Row reductions run one workgroup per row with a tree sum in workgroup memory;
// column reductions one invocation per column over the rows in order; sums that feed the
// accumulator are double-f32 (two_sum / two_prod), so they keep about 48 bits.
import type { Backend, GeluApprox, HalfDType } from '../types.js';
import type { Storage, TensorStorage } from '../../tensor/tensor.js';
import { GpuContext, type GpuF32, type GpuU16, type Operand } from './device.js';
import { dtypeCode, groupsFor, type KernelSpec, Kernels, type OpKind, REDUCE_WGSL } from './wgsl.js';


const REDUCE = REDUCE_WGSL;

const MATH = /* wgsl */ `
fn sigm(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
// tanh to a few ulp (Cephes tanhf): a rational form near 0, where (1 − e)/(1 + e) cancels
fn tanh_(x: f32) -> f32 {
  let a = abs(x);
  if (a < 0.625) {
    let z = x * x;
    return ((((-5.70498872745e-3 * z + 2.06390887954e-2) * z - 5.37397155531e-2) * z + 1.33314422036e-1) * z - 3.33332819422e-1) * z * x + x;
  }
  if (a > 44.0) { return sign(x); }
  let r = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
  return select(r, -r, x < 0.0);
}
// erfc for x ≥ 0 (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7)
fn erfc_pos(z: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.5 * z);
  return t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
}
// Φ(x), the normal CDF, accurate in the left tail
fn ncdf(x: f32) -> f32 {
  let z = x * 0.70710678118654752;
  if (z < 0.0) { return 0.5 * erfc_pos(-z); }
  return 1.0 - 0.5 * erfc_pos(z);
}
const K_TANH: f32 = 0.7978845608028654;
fn gelu(x: f32, tanh_approx: u32) -> f32 {
  if (tanh_approx == 1u) { return 0.5 * x * (1.0 + tanh_(K_TANH * (x + 0.044715 * x * x * x))); }
  return x * ncdf(x);
}
fn gelu_grad(x: f32, tanh_approx: u32) -> f32 {
  if (tanh_approx == 1u) {
    let th = tanh_(K_TANH * (x + 0.044715 * x * x * x));
    return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * K_TANH * (1.0 + 3.0 * 0.044715 * x * x);
  }
  return ncdf(x) + x * 0.3989422804014327 * exp(-0.5 * x * x);
}
`;

const NARROW = /* wgsl */ `
fn to_bf16(bits: u32) -> u32 {
  if ((bits & 0x7fffffffu) > 0x7f800000u) { return ((bits >> 16u) | 0x40u) & 0xffffu; }
  let rounding = 0x7fffu + ((bits >> 16u) & 1u);
  return ((bits + rounding) >> 16u) & 0xffffu;
}
fn to_f16(bits: u32) -> u32 {
  let sign = (bits >> 16u) & 0x8000u;
  let ex = (bits >> 23u) & 0xffu;
  var mant = bits & 0x7fffffu;
  if (ex == 0xffu) { return sign | 0x7c00u | select(0u, 0x200u, mant != 0u); }
  var e = i32(ex) - 127 + 15;
  if (e >= 0x1f) { return sign | 0x7c00u; }
  if (e <= 0) {
    if (e < -10) { return sign; }
    mant = mant | 0x800000u;
    let shift = u32(14 - e);
    let half = 1u << (shift - 1u);
    var m = mant >> shift;
    let rem = mant & ((1u << shift) - 1u);
    if (rem > half || (rem == half && (m & 1u) == 1u)) { m = m + 1u; }
    return sign | m;
  }
  var m = mant >> 13u;
  let rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (m & 1u) == 1u)) {
    m = m + 1u;
    if (m == 0x400u) {
      m = 0u;
      e = e + 1;
      if (e >= 0x1f) { return sign | 0x7c00u; }
    }
  }
  return sign | (u32(e) << 10u) | m;
}
`;

/** the dtype code of a Storage operand given with its dtype (see wgsl.ts `any`) */
const dt = (x: TensorStorage | null, d: string | undefined): number => {
  if (x instanceof Uint8Array) throw new Error(`webgpu: quantized ${d} operands are not read by this backend (it lists no quantTypes: models dequantize on load)`);
  return dtypeCode(d, x instanceof Uint16Array);
};

/** Kernel methods of the backend over a context (gemm and attention come from their own files). */
export function elementwiseKernels(ctx: GpuContext, small: boolean): Omit<Backend, 'name' | 'threads' | 'memory' | 'gemm' | 'attentionForward' | 'attentionBackward'> {
  // invocations per workgroup of the row kernels (one row each: norms, softmax, cross-entropy):
  // 64 keeps a row's tree sum short; 16 on a fallback adapter (SwiftShader runs a workgroup's
  // invocations as fibers, and its barriers are costly)
  const ROW_WG = small ? 16 : 64;
  const K = new Kernels(ctx);
  const map = (name: string, ops: [string, OpKind][], params: string[], body: string, variant = '', decls = ''): ((o: Operand[], p: number[], n: number) => void) => {
    const k = K.get(name, variant, (): KernelSpec => ({ ops, params: ['n', ...params], decls: MATH + decls, body: `  if (gid >= n) { return; }\n  let i = gid;\n${body}` }));
    return (o, p, n) => k.run(o, [n, ...p], groupsFor(n));
  };
  const perRow = (name: string, ops: [string, OpKind][], params: string[], body: string, variant = ''): ((o: Operand[], p: number[], rows: number) => void) => {
    const k = K.get(name, `${variant}/${ROW_WG}`, (): KernelSpec => ({ ops, params, wg: ROW_WG, decls: REDUCE + MATH, body: `  let row = wg;\n${body}` }));
    return (o, p, rows) => k.run(o, p, rows);
  };

  const fill = map('fill', [['out', 'f32']], ['v:f'], '  out_w(i, v);');
  ctx.fillKernel = (h, v) => fill([h], [v], h.length);
  ctx.copyKernel = (dst, src) => copy2dK([dst, src], [src.length, 0, 0, src.length, src.length, 0], src.length); // copy2dK is defined below, called later
  ctx.copyHalf = (dst: GpuU16, src: GpuU16) => {
    // one invocation per 32-bit word of dst, so no two write one word
    const k = K.get('copyHalf', '', () => ({
      ops: [['dst', 'bits'], ['src', 'bits']],
      params: ['n', 'w0', 'nw'],
      body: `  if (gid >= nw) { return; }
  let word = w0 + gid;
  let d0 = pu(0u);
  let s0 = pu(1u);
  var w = B_dst[word];
  for (var k = 0u; k < 2u; k++) {
    let j = 2u * word + k;
    if (j >= d0 && j < d0 + n) {
      let si = s0 + (j - d0);
      let h = half_at(B_src[si >> 1u], si);
      w = (w & ~(0xffffu << (16u * k))) | (h << (16u * k));
    }
  }
  B_dst[word] = w;`,
    }));
    const w0 = dst.off >> 1;
    const nw = ((dst.off + dst.n - 1) >> 1) - w0 + 1;
    if (dst.n > 0) k.run([dst, src], [dst.n, w0, nw], groupsFor(nw));
  };

  const bin = (name: string, expr: string) => map(name, [['out', 'f32'], ['a', 'f32'], ['b', 'f32']], [], `  out_w(i, ${expr});`);
  const addK = bin('add', 'a_(i) + b_(i)');
  const mulK = bin('mul', 'a_(i) * b_(i)');
  const divK = bin('div', 'div_rn(a_(i), b_(i))');
  const axpyK = map('axpy', [['y', 'f32'], ['x', 'f32']], ['alpha:f'], '  y_w(i, y_(i) + alpha * x_(i));');
  const scaleK = map('scale', [['out', 'f32'], ['a', 'f32']], ['s:f'], '  out_w(i, a_(i) * s);');
  const tanhF = map('tanhForward', [['out', 'f32'], ['inp', 'f32']], [], '  out_w(i, tanh_(inp_(i)));');
  const tanhB = map('tanhBackward', [['dinp', 'f32'], ['y', 'f32'], ['dout', 'f32']], [], '  let y = y_(i);\n  dinp_w(i, dout_(i) * (1.0 - y * y));');
  const geluF = map('geluForward', [['out', 'f32'], ['inp', 'f32']], ['t'], '  out_w(i, gelu(inp_(i), t));');
  const geluB = map('geluBackward', [['dinp', 'f32'], ['inp', 'f32'], ['dout', 'f32']], ['t'], '  dinp_w(i, dinp_(i) + gelu_grad(inp_(i), t) * dout_(i));');
  const siluF = map('siluForward', [['out', 'f32'], ['inp', 'f32']], [], '  let x = inp_(i);\n  out_w(i, x * sigm(x));');
  const siluB = map('siluBackward', [['dinp', 'f32'], ['inp', 'f32'], ['dout', 'f32']], [], '  let x = inp_(i);\n  let s = sigm(x);\n  dinp_w(i, dinp_(i) + dout_(i) * s * (1.0 + x * (1.0 - s)));');
  const swigluF = map('swigluForward', [['out', 'f32'], ['gate', 'f32'], ['up', 'f32']], [], '  let g = gate_(i);\n  out_w(i, g * sigm(g) * up_(i));');
  const swigluB = map(
    'swigluBackward',
    [['dgate', 'f32'], ['dup', 'f32'], ['dout', 'f32'], ['gate', 'f32'], ['up', 'f32']],
    ['acc'],
    `  let g = gate_(i);
  let s = sigm(g);
  let d = dout_(i);
  let u = up_(i);
  let dg = d * u * s * (1.0 + g * (1.0 - s));
  let du = d * g * s;
  if (acc == 1u) { dgate_w(i, dgate_(i) + dg); dup_w(i, dup_(i) + du); } else { dgate_w(i, dg); dup_w(i, du); }`,
  );
  const widenK = (d: HalfDType) => map('widen', [['out', 'bits'], ['src', d]], [], d === 'bf16' ? '  out_w(i, src_h(i) << 16u);' : '  out_w(i, widen_f16_bits(src_h(i)));', d);
  const narrowK = (d: HalfDType) =>
    K.get('narrow', d, () => ({
      ops: [['out', 'bits'], ['src', 'bits']],
      params: ['n', 'w0', 'nw'],
      decls: NARROW,
      body: `  if (gid >= nw) { return; }
  let word = w0 + gid;
  let d0 = pu(0u);
  var w = B_out[word];
  for (var k = 0u; k < 2u; k++) {
    let j = 2u * word + k;
    if (j >= d0 && j < d0 + n) {
      let h = to_${d}(src_(j - d0));
      w = (w & ~(0xffffu << (16u * k))) | (h << (16u * k));
    }
  }
  B_out[word] = w;`,
    }));

  const biasAddK = map('biasAdd', [['out', 'f32'], ['bias', 'any']], ['N', 'biasDt'], '  out_w(i, out_(i) + bias_(i % N));');
  // one invocation per column, rows in order
  const colK = (name: string, ops: [string, OpKind][], params: string[], body: string, variant = '') =>
    K.get(name, variant, () => ({ ops, params: ['N', 'C', ...params], decls: REDUCE + MATH, body: `  if (gid >= C) { return; }\n  let c = gid;\n${body}` }));
  const biasBwd = colK('biasBackward', [['dbias', 'f32'], ['dout', 'f32']], [], '  var s = 0.0;\n  for (var r = 0u; r < N; r++) { s = s + dout_(r * C + c); }\n  dbias_w(c, dbias_(c) + s);');

  const rmsF = perRow(
      'rmsnormForward',
      [['out', 'f32'], ['rstd', 'f32'], ['inp', 'f32'], ['w', 'any']],
      ['C', 'eps:f', 'wDt'],
      `  let x = row * C;
  var ss = 0.0;
  for (var c = lid; c < C; c += WG) { let v = inp_(x + c); ss = ss + v * v; }
  ss = wsum(lid, ss);
  let r = 1.0 / sqrt(ss / f32(C) + eps);
  for (var c = lid; c < C; c += WG) { out_w(x + c, inp_(x + c) * r * w_(c)); }
  if (lid == 0u) { rstd_w(row, r); }`,
    );
  const rmsBx = perRow(
      'rmsnormBackward',
      [['dinp', 'f32'], ['dout', 'f32'], ['inp', 'f32'], ['w', 'any'], ['rstd', 'f32']],
      ['C', 'wDt'],
      `  let x = row * C;
  let r = rstd_(row);
  var dot = 0.0;
  for (var c = lid; c < C; c += WG) { dot = dot + dout_(x + c) * w_(c) * inp_(x + c); }
  dot = wsum(lid, dot);
  let k = dot * r * r * r / f32(C);
  for (var c = lid; c < C; c += WG) { dinp_w(x + c, dinp_(x + c) + r * w_(c) * dout_(x + c) - inp_(x + c) * k); }`,
    );
  const rmsBw = colK('rmsnormBackwardWeight', [['dw', 'f32'], ['dout', 'f32'], ['inp', 'f32'], ['rstd', 'f32']], [], '  var s = 0.0;\n  for (var r = 0u; r < N; r++) { s = s + dout_(r * C + c) * inp_(r * C + c) * rstd_(r); }\n  dw_w(c, dw_(c) + s);');

  const lnF = perRow(
      'layernormForward',
      [['out', 'f32'], ['mean', 'f32'], ['rstd', 'f32'], ['inp', 'f32'], ['w', 'any'], ['b', 'any']],
      ['C', 'eps:f', 'hasBias', 'wDt', 'bDt'],
      `  let x = row * C;
  var s = 0.0;
  for (var c = lid; c < C; c += WG) { s = s + inp_(x + c); }
  let m = wsum(lid, s) / f32(C);
  var v = 0.0;
  for (var c = lid; c < C; c += WG) { let d = inp_(x + c) - m; v = v + d * d; }
  let r = 1.0 / sqrt(wsum(lid, v) / f32(C) + eps);
  for (var c = lid; c < C; c += WG) {
    var y = (inp_(x + c) - m) * r * w_(c);
    if (hasBias == 1u) { y = y + b_(c); }
    out_w(x + c, y);
  }
  if (lid == 0u) { mean_w(row, m); rstd_w(row, r); }`,
    );
  const lnBx = perRow(
      'layernormBackward',
      [['dinp', 'f32'], ['dout', 'f32'], ['inp', 'f32'], ['w', 'any'], ['mean', 'f32'], ['rstd', 'f32']],
      ['C', 'wDt'],
      `  let x = row * C;
  let m = mean_(row);
  let r = rstd_(row);
  var gs = 0.0;
  var gx = 0.0;
  for (var c = lid; c < C; c += WG) {
    let g = dout_(x + c) * w_(c);
    gs = gs + g;
    gx = gx + g * (inp_(x + c) - m) * r;
  }
  gs = wsum(lid, gs) / f32(C);
  gx = wsum(lid, gx) / f32(C);
  for (var c = lid; c < C; c += WG) {
    let xhat = (inp_(x + c) - m) * r;
    dinp_w(x + c, dinp_(x + c) + r * (dout_(x + c) * w_(c) - gs - xhat * gx));
  }`,
    );
  const lnBw = colK(
    'layernormBackwardParams',
    [['dw', 'f32'], ['db', 'f32'], ['dout', 'f32'], ['inp', 'f32'], ['mean', 'f32'], ['rstd', 'f32']],
    ['hasW', 'hasB'],
    `  var sw = 0.0;
  var sb = 0.0;
  for (var r = 0u; r < N; r++) {
    let d = dout_(r * C + c);
    sw = sw + d * (inp_(r * C + c) - mean_(r)) * rstd_(r);
    sb = sb + d;
  }
  if (hasW == 1u) { dw_w(c, dw_(c) + sw); }
  if (hasB == 1u) { db_w(c, db_(c) + sb); }`,
  );

  const softmaxK = perRow(
    'softmax',
    [['out', 'f32'], ['inp', 'f32']],
    ['C'],
    `  let x = row * C;
  var mx = ninf();
  for (var c = lid; c < C; c += WG) { mx = max(mx, inp_(x + c)); }
  mx = wmax(lid, mx);
  var s = 0.0;
  for (var c = lid; c < C; c += WG) { s = s + exp(inp_(x + c) - mx); }
  s = wsum(lid, s);
  for (var c = lid; c < C; c += WG) {
    if (mx == ninf()) { out_w(x + c, 0.0); } else { out_w(x + c, exp(inp_(x + c) - mx) / s); }
  }`,
  );

  const embF = map('embeddingForward', [['out', 'f32'], ['ids', 'i32'], ['table', 'any']], ['C', 'tableDt'], '  let r = u32(ids_(i / C));\n  out_w(i, table_(r * C + i % C));');
  const embB = colK('embeddingBackward', [['dtable', 'f32'], ['dout', 'f32'], ['ids', 'i32']], [], '  for (var r = 0u; r < N; r++) {\n    let t = u32(ids_(r)) * C + c;\n    dtable_w(t, dtable_(t) + dout_(r * C + c));\n  }');

  const ropeK = map(
    'rope',
    [['x', 'f32'], ['cos', 'f32'], ['sin', 'f32'], ['pos', 'i32'], ['src', 'f32']],
    ['H', 'D', 'inter', 'inv', 'hasSrc'],
    `  let half = D / 2u;
  let k = i % half;
  let bh = i / half;
  let bt = bh / H;
  let p = u32(pos_(bt)) * half;
  let base = bh * D;
  let c = cos_(p + k);
  var s = sin_(p + k);
  if (inv == 1u) { s = -s; }
  let ia = base + select(k, 2u * k, inter == 1u);
  let ib = base + select(k + half, 2u * k + 1u, inter == 1u);
  var a = x_(ia);
  var b = x_(ib);
  if (hasSrc == 1u) { a = src_(ia); b = src_(ib); }
  x_w(ia, a * c - b * s);
  x_w(ib, a * s + b * c);`,
  );

  // cross-entropy: one workgroup per row; mode 1 losses, 2 dlogits, 3 both
  const ceK = perRow(
    'crossEntropy',
    [['losses', 'f32'], ['dl', 'f32'], ['logits', 'f32'], ['targets', 'i32']],
    ['V', 'gradScale:f', 'ignore:i', 'mode'],
    `  let x = row * V;
  let t = targets_(row);
  let skip = t == ignore;
  var mx = ninf();
  for (var c = lid; c < V; c += WG) { mx = max(mx, logits_(x + c)); }
  mx = wmax(lid, mx);
  var s = 0.0;
  for (var c = lid; c < V; c += WG) { s = s + exp(logits_(x + c) - mx); }
  s = wsum(lid, s);
  let lse = mx + log(s);
  var lt = 0.0;
  if (!skip) { lt = logits_(x + u32(t)); }
  workgroupBarrier();
  if ((mode & 1u) == 1u && lid == 0u) { losses_w(row, select(lse - lt, 0.0, skip)); }
  if ((mode & 2u) == 2u) {
    for (var c = lid; c < V; c += WG) {
      var g = 0.0;
      if (!skip) { g = (exp(logits_(x + c) - lse) - select(0.0, 1.0, i32(c) == t)) * gradScale; }
      dl_w(x + c, g);
    }
  }`,
  );

  const adamwK = map(
    'adamw',
    [['p', 'f32'], ['g', 'f32'], ['m', 'f32'], ['v', 'f32']],
    ['lr:f', 'b1:f', 'b2:f', 'eps:f', 'decay:f', 'bc1:f', 'bc2:f'],
    `  let gi = g_(i);
  let mi = b1 * m_(i) + (1.0 - b1) * gi;
  let vi = b2 * v_(i) + (1.0 - b2) * gi * gi;
  m_w(i, mi);
  v_w(i, vi);
  p_w(i, p_(i) * decay - (lr * (mi / bc1)) / (sqrt(vi / bc2) + eps));`,
  );
  const sgdK = map(
    'sgd',
    [['w', 'f32'], ['g', 'f32'], ['buf', 'f32']],
    ['lr:f', 'mu:f', 'damp:f', 'wd:f', 'nest', 'first', 'hasBuf'],
    `  var d = g_(i) + wd * w_(i);
  if (hasBuf == 1u) {
    var b = d;
    if (first == 0u) { b = mu * buf_(i) + (1.0 - damp) * d; }
    buf_w(i, b);
    d = select(b, d + mu * b, nest == 1u);
  }
  w_w(i, w_(i) - lr * d);`,
  );

  const im2colK = map(
    'im2col',
    [['cols', 'f32'], ['img', 'f32']],
    ['C', 'H', 'W', 'KH', 'KW', 'SH', 'SW', 'OH', 'OW'],
    `  let CK = C * KH * KW;
  let col = i % CK;
  let r = i / CK;
  let ow = r % OW;
  let oh = (r / OW) % OH;
  let b = r / (OW * OH);
  let kw = col % KW;
  let kh = (col / KW) % KH;
  let c = col / (KW * KH);
  cols_w(i, img_(((b * C + c) * H + oh * SH + kh) * W + ow * SW + kw));`,
  );
  const col2imK = map(
    'col2im',
    [['dimg', 'f32'], ['dcols', 'f32']],
    ['C', 'H', 'W', 'KH', 'KW', 'SH', 'SW', 'OH', 'OW'],
    `  let w = i % W;
  let h = (i / W) % H;
  let c = (i / (W * H)) % C;
  let b = i / (W * H * C);
  var s = dimg_(i);
  for (var kh = 0u; kh < KH; kh++) {
    if (h < kh || (h - kh) % SH != 0u) { continue; }
    let oh = (h - kh) / SH;
    if (oh >= OH) { continue; }
    for (var kw = 0u; kw < KW; kw++) {
      if (w < kw || (w - kw) % SW != 0u) { continue; }
      let ow = (w - kw) / SW;
      if (ow >= OW) { continue; }
      s = s + dcols_(((b * OH + oh) * OW + ow) * (C * KH * KW) + (c * KH + kh) * KW + kw);
    }
  }
  dimg_w(i, s);`,
  );

  // acc[slot] += Σ x (mode 0) or Σ x² (mode 1): one workgroup, double-f32 partial sums, a fixed tree
  const sumK = K.get('sumInto', '', () => ({
    ops: [['acc', 'acc'], ['x', 'f32']],
    params: ['n', 'slot', 'sq'],
    decls: `var<workgroup> hi: array<f32, WG>;\nvar<workgroup> lo: array<f32, WG>;`,
    body: `  var s = vec2<f32>(0.0, 0.0);
  for (var i = lid; i < n; i += WG) {
    let v = x_(i);
    if (sq == 1u) { s = df_add(s, two_prod(v, v)); } else { s = df_add(s, vec2<f32>(v, 0.0)); }
  }
  hi[lid] = s.x;
  lo[lid] = s.y;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k >> 1u) {
    if (lid < k) {
      let t = df_add(vec2<f32>(hi[lid], lo[lid]), vec2<f32>(hi[lid + k], lo[lid + k]));
      hi[lid] = t.x;
      lo[lid] = t.y;
    }
    workgroupBarrier();
  }
  if (lid == 0u) { acc_w(slot, df_add(acc_(slot), vec2<f32>(hi[0], lo[0]))); }`,
  }));
  const clipK = map(
    'clipByNorm',
    [['x', 'f32'], ['acc', 'acc']],
    ['slot', 'maxNorm:f'],
    `  let a = acc_(slot);
  let norm = sqrt(a.x + a.y);
  if (!finite(a.x) || !finite(norm)) { return; }
  let f = maxNorm / (norm + 1e-6);
  if (f < 1.0) { x_w(i, x_(i) * f); }`,
    '',
    REDUCE,
  );

  const copy2dK = map(
    'copy2d',
    [['dst', 'f32'], ['src', 'f32']],
    ['cols', 'd0', 's0', 'ds', 'ss', 'acc'],
    `  let r = i / cols;
  let c = i % cols;
  let d = d0 + r * ds + c;
  var v = src_(s0 + r * ss + c);
  if (acc == 1u) { v = v + dst_(d); }
  dst_w(d, v);`,
  );
  const addRowVectorK = map('addRowVector', [['out', 'f32'], ['v', 'f32']], ['C', 'alpha:f'], '  out_w(i, out_(i) + alpha * v_(i % C));');
  const scaleColumnsK = map('scaleColumns', [['out', 'f32'], ['x', 'f32'], ['v', 'f32']], ['C', 'shift:f'], '  out_w(i, (v_(i % C) + shift) * x_(i));');
  const columnSumsK = colK(
    'columnSums',
    [['out', 'f32'], ['x', 'f32'], ['v', 'f32']],
    ['shift:f', 'alpha:f', 'hasV'],
    `  var s = 0.0;
  for (var r = 0u; r < N; r++) { s = s + x_(r * C + c); }
  var f = alpha;
  if (hasV == 1u) { f = alpha * (v_(c) + shift); }
  out_w(c, out_(c) + f * s);`,
  );
  const columnDotsK = colK(
    'columnDots',
    [['out', 'f32'], ['a', 'f32'], ['b', 'f32'], ['d', 'f32']],
    [],
    `  var s = vec2<f32>(0.0, 0.0);
  for (var r = 0u; r < N; r++) { s = df_add(s, two_prod(a_(r * C + c), b_(r * C + c))); }
  out_w(c, out_(c) + (s.x + s.y) / d_(c));`,
  );
  const doraK = map(
      'doraCombine',
      [['out', 'f32'], ['P', 'f32'], ['wx', 'f32'], ['g', 'f32'], ['bias', 'any']],
      ['O', 'hasWx', 'hasBias', 'biasDt'],
      `  let o = i % O;
  if (hasWx == 1u) {
    let p = P_(i) + wx_(i);
    P_w(i, p);
    out_w(i, out_(i) + g_(o) * p - wx_(i));
  } else {
    var bo = 0.0;
    if (hasBias == 1u) { bo = bias_(o); }
    let p = P_(i) + out_(i) - bo;
    P_w(i, p);
    out_w(i, g_(o) * p + bo);
  }`,
    );
  const rowNormsK = K.get('weightRowNorms', '', () => ({
      ops: [['out', 'f32'], ['w', 'any'], ['delta', 'f32']],
      params: ['rows', 'o0', 'O', 'I', 'trans', 'hasDelta', 'wDt'],
      body: `  if (gid >= rows) { return; }
  let o = o0 + gid;
  var s = vec2<f32>(0.0, 0.0);
  for (var i = 0u; i < I; i++) {
    var v = w_(select(o * I + i, i * O + o, trans == 1u));
    if (hasDelta == 1u) { v = v + delta_(gid * I + i); }
    s = df_add(s, two_prod(v, v));
  }
  out_w(o, sqrt(s.x + s.y));`,
    }));
  // w · (num/den) with the factor carried as a double-f32 (the reference's is f64)
  const scaleRowsK = map(
    'scaleWeightRows',
    [['w', 'f32'], ['num', 'f32'], ['den', 'f32']],
    ['O', 'I', 'trans'],
    `  let o = select(i / I, i % O, trans == 1u);
  let f = div_df(num_(o), den_(o));
  let x = w_(i);
  let p = two_prod(x, f.x);
  w_w(i, p.x + (p.y + x * f.y));`,
  );
  const additiveMaskK = map('additiveMask', [['out', 'f32'], ['mask', 'u8']], [], '  out_w(i, select(ninf(), 0.0, mask_(i) != 0u));', '', REDUCE);
  const addMasksK = map('addMasks', [['out', 'f32'], ['bias', 'f32'], ['own', 'f32']], ['T', 'S', 'full'], '  let b = i / (T * S);\n  let s = i % S;\n  out_w(i, bias_(i) + select(own_(b * S + s), own_(i), full == 1u));');

  const geluT = (a: GeluApprox): number => (a === 'tanh' ? 1 : 0);

  return {
    add: (out, a, b) => addK([out, a, b], [], out.length),
    axpy: (y, x, alpha) => axpyK([y, x], [alpha], y.length),
    scale: (out, a, s) => scaleK([out, a], [s], out.length),
    sumSquares(): number {
      throw new Error('webgpu: sumSquares returns a number, which would need a synchronous readback; use sumSquaresInto with an accumulator');
    },
    widen: (out, src, d) => widenK(d)([out, src], [], out.length),
    narrow(out, src, d) {
      const o = out as GpuU16;
      const w0 = o.off >> 1;
      const nw = o.n ? ((o.off + o.n - 1) >> 1) - w0 + 1 : 0;
      if (nw) narrowK(d).run([out, src], [o.n, w0, nw], groupsFor(nw));
    },
    biasAdd: (out, bias, M, N, d) => biasAddK([out, bias], [N, dt(bias, d)], M * N),
    biasBackward: (dbias, dout, M, N) => biasBwd.run([dbias, dout], [M, N], groupsFor(N)),
    rmsnormForward: (out, rstd, inp, w, N, C, eps, d) => rmsF([out, rstd, inp, w], [C, eps, dt(w, d)], N),
    rmsnormBackward(dinp, dweight, dout, inp, w, rstd, N, C, d) {
      if (dinp) rmsBx([dinp, dout, inp, w, rstd], [C, dt(w, d)], N);
      if (dweight) rmsBw.run([dweight, dout, inp, rstd], [N, C], groupsFor(C));
    },
    layernormForward: (out, mean, rstd, inp, w, bias, N, C, eps, d) => lnF([out, mean, rstd, inp, w, bias], [C, eps, bias ? 1 : 0, dt(w, d), dt(bias, d)], N),
    layernormBackward(dinp, dweight, dbias, dout, inp, w, mean, rstd, N, C, d) {
      if (dinp) lnBx([dinp, dout, inp, w, mean, rstd], [C, dt(w, d)], N);
      if (dweight || dbias) lnBw.run([dweight, dbias, dout, inp, mean, rstd], [N, C, dweight ? 1 : 0, dbias ? 1 : 0], groupsFor(C));
    },
    softmax: (out, inp, N, C) => softmaxK([out, inp], [C], N),
    geluForward: (out, inp, a) => geluF([out, inp], [geluT(a)], out.length),
    geluBackward: (dinp, inp, dout, a) => geluB([dinp, inp, dout], [geluT(a)], dinp.length),
    siluForward: (out, inp) => siluF([out, inp], [], out.length),
    siluBackward: (dinp, inp, dout) => siluB([dinp, inp, dout], [], dinp.length),
    swigluForward: (out, gate, up) => swigluF([out, gate, up], [], out.length),
    swigluBackward: (dgate, dup, dout, gate, up, accumulate = true) => swigluB([dgate, dup, dout, gate, up], [accumulate ? 1 : 0], dout.length),
    embeddingForward: (out, ids, table, N, C, d) => embF([out, ids, table], [C, dt(table, d)], N * C),
    embeddingBackward: (dtable, dout, ids, N, C) => embB.run([dtable, dout, ids], [N, C], groupsFor(C)),
    rope: (x, cos, sin, positions, B, T, H, D, interleaved, inverse, src) => ropeK([x, cos, sin, positions, src ?? null], [H, D, interleaved ? 1 : 0, inverse ? 1 : 0, src ? 1 : 0], (B * T * H * D) / 2),
    crossEntropyForward: (losses, logits, targets, N, V, ignore) => ceK([losses, null, logits, targets], [V, 0, ignore, 1], N),
    crossEntropyBackward: (dl, logits, targets, N, V, gs, ignore) => ceK([null, dl, logits, targets], [V, gs, ignore, 2], N),
    crossEntropyLossGrad: (losses, dl, logits, targets, N, V, gs, ignore) => ceK([losses, dl, logits, targets], [V, gs, ignore, 3], N),
    adamw(p, g, m, v, a) {
      const bc1 = 1 - a.beta1 ** a.step;
      const bc2 = 1 - a.beta2 ** a.step;
      adamwK([p, g, m, v], [a.lr, a.beta1, a.beta2, a.eps, 1 - a.lr * a.weightDecay, bc1, bc2], p.length);
    },
    im2col: (cols, img, a) => im2colK([cols, img], patchParams(a), cols.length),
    col2im: (dimg, dcols, a) => col2imK([dimg, dcols], patchParams(a), dimg.length),
    sumInto(acc, slot, x, offset = 0, n) {
      const len = n ?? x.length - offset;
      sumK.run([acc, x.subarray(offset, offset + len)], [len, slot, 0], 1);
    },
    sumSquaresInto: (acc, slot, x) => sumK.run([acc, x], [x.length, slot, 1], 1),
    clipByNorm: (x, acc, slot, maxNorm) => clipK([x, acc], [slot, maxNorm], x.length),
    copy2d: (dst, src, g) => copy2dK([dst, src], [g.cols, g.dstOffset ?? 0, g.srcOffset ?? 0, g.dstStride ?? g.cols, g.srcStride ?? g.cols, g.accumulate ? 1 : 0], g.rows * g.cols),
    mul: (out, a, b) => mulK([out, a, b], [], out.length),
    div: (out, a, b) => divK([out, a, b], [], out.length),
    addRowVector: (out, v, alpha, N, C) => addRowVectorK([out, v], [C, alpha], N * C),
    scaleColumns: (out, x, v, shift, N, C) => scaleColumnsK([out, x, v], [C, shift], N * C),
    columnSums: (out, x, v, shift, alpha, N, C) => columnSumsK.run([out, x, v], [N, C, shift, alpha, v ? 1 : 0], groupsFor(C)),
    columnDots: (out, a, b, d, N, C) => columnDotsK.run([out, a, b, d], [N, C], groupsFor(C)),
    doraCombine: (out, P, wx, g, bias, N, O, d) => doraK([out, P, wx, g, bias], [O, wx ? 1 : 0, bias ? 1 : 0, dt(bias, d)], N * O),
    weightRowNorms: (out, w, wDtype, transposed, delta, o0, rows, O, I) => rowNormsK.run([out, w, delta], [rows, o0, O, I, transposed ? 1 : 0, delta ? 1 : 0, dt(w, wDtype)], groupsFor(rows)),
    scaleWeightRows: (w, num, den, transposed, O, I) => scaleRowsK([w, num, den], [O, I, transposed ? 1 : 0], O * I),
    additiveMask: (out, mask, B, S) => additiveMaskK([out, mask], [], B * S),
    addMasks: (out, bias, own, B, T, S) => addMasksK([out, bias, own], [T, S, own.length === B * T * S ? 1 : 0], B * T * S),
    tanhForward: (out, inp) => tanhF([out, inp], [], out.length),
    tanhBackward: (dinp, y, dout) => tanhB([dinp, y, dout], [], dinp.length),
    sgd: (w, g, buf, a) => sgdK([w, g, buf], [a.lr, a.momentum, a.dampening, a.weightDecay, a.nesterov ? 1 : 0, a.first ? 1 : 0, buf ? 1 : 0], g.length),
  };
}

function patchParams(a: { C: number; H: number; W: number; KH: number; KW: number; SH: number; SW: number }): number[] {
  const OH = Math.floor((a.H - a.KH) / a.SH) + 1;
  const OW = Math.floor((a.W - a.KW) / a.SW) + 1;
  return [a.C, a.H, a.W, a.KH, a.KW, a.SH, a.SW, OH, OW];
}

export type { Storage, GpuF32 };
