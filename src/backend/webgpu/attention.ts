// Fused attention on WebGPU (docs/ARCHITECTURE.md §WebGPU), the reference's contract
// (backend/ref/attention.ts): causal, grouped-query (head h reads key/value head
// h / (Hq/Hkv)), sliding window, an optional [B,S] or [B,T,S] additive mask.
//
// Forward: one workgroup of WG (64; 16 on a fallback adapter) per (b, h, t). It walks the
// visible keys in chunks of WG (one score per invocation), keeps the running max and sum
// (online softmax) and the output row spread over the invocations (d = lid + WG·j, D ≤ 256),
// and writes out and lse once.
// Backward, three passes: (0) lse and Δ_t = dout_t·out_t side by side in a scratch buffer;
// (1) one workgroup per (b, h, t) writes dq_t = scale·Σ_s ds_s·k_s over key chunks;
// (2) one workgroup per (b, hkv, s) writes dk_s and dv_s summing over the query heads of its
// group and the queries that see key s, in chunks of WG. No atomics: every output row has one
// writer, so results do not depend on scheduling.
import type { AttentionArgs, Backend } from '../types.js';
import type { GpuContext } from './device.js';
import { groupsFor, Kernels, REDUCE_WGSL } from './wgsl.js';

const COMMON = REDUCE_WGSL + /* wgsl */ `
var<workgroup> row: array<f32, 256>;
var<workgroup> row2: array<f32, 256>;
var<workgroup> ps: array<f32, WG>;
var<workgroup> ds: array<f32, WG>;
`;

// params shared by the passes (after the operands): the dims and flags of AttentionArgs
const PARAMS = ['B', 'T', 'S', 'Hq', 'Hkv', 'D', 'causal', 'scale:f', 'window', 'maskMode'];

function argsParams(a: AttentionArgs): number[] {
  const mask = a.mask ?? null;
  const maskMode = !mask ? 0 : mask.length === a.B * a.S ? 1 : 2;
  return [a.B, a.T, a.S, a.Hq, a.Hkv, a.D, a.causal ? 1 : 0, a.scale, a.window ?? 0, maskMode];
}

// the visible key range [lo, hi) of query t, and the mask value of (b, t, s)
const RANGE = /* wgsl */ `
  var hi = S;
  if (causal == 1u) { hi = min(S, t + S - T + 1u); }
  var lo = 0u;
  if (window > 0u && t + S - T + 1u > window) { lo = t + S - T + 1u - window; }`;
const MASK = (b: string, t: string, s: string): string =>
  `select(0.0, select(mask_(${b} * S + ${s}), mask_((${b} * T + ${t}) * S + ${s}), maskMode == 2u), maskMode != 0u)`;

export function attentionKernels(ctx: GpuContext, small: boolean): Pick<Backend, 'attentionForward' | 'attentionBackward'> {
  // invocations per workgroup (keys or queries per chunk); each keeps D/WG ≤ 256/WG output lanes.
  // 16 on a fallback adapter, whose barriers are costly (SwiftShader runs invocations as fibers)
  const WG = small ? 16 : 64;
  const K = new Kernels(ctx);
  const check = (a: AttentionArgs): void => {
    if (a.D > 256) throw new Error(`webgpu attention: head size D = ${a.D} is above the kernel's 256`);
  };
  // one workgroup per query row (b, h, t): its indices, its kv head and the row's offset in q
  const QUERY_ROW = /* wgsl */ `
  let t = wg % T;
  let h = (wg / T) % Hq;
  let b = wg / (T * Hq);
  let hk = h / (Hq / Hkv);
  let qo = (b * T + t) * Hq * D + h * D;`;
  const fwd = K.get('attentionForward', `${WG}`, () => ({
    ops: [['out', 'f32'], ['lse', 'f32'], ['q', 'f32'], ['k', 'f32'], ['v', 'f32'], ['mask', 'f32']],
    params: PARAMS,
    wg: WG,
    decls: COMMON,
    body: /* wgsl */ `
${QUERY_ROW}
  for (var d = lid; d < D; d += WG) { row[d] = q_(qo + d); }
  workgroupBarrier();
${RANGE}
  var m = LOWEST; // the running max: LOWEST until a key is seen (uniform, unlike a loaded −∞)
  var l = 0.0;
  var acc: array<f32, ${256 / WG}>;
  for (var j = 0u; j < ${256 / WG}u; j++) { acc[j] = 0.0; }
  for (var s0 = lo; s0 < hi; s0 += WG) {
    let s = s0 + lid;
    var sc = ninf();
    if (s < hi) {
      let ko = (b * S + s) * Hkv * D + hk * D;
      var dot = 0.0;
      for (var d = 0u; d < D; d++) { dot = dot + row[d] * k_(ko + d); }
      sc = scale * dot + ${MASK('b', 't', 's')};
    }
    let cm = wmax(lid, sc);
    let mn = max(m, cm);
    if (is_ninf(mn)) { continue; }
    let corr = exp(m - mn);
    var p = 0.0;
    if (!is_ninf(sc)) { p = exp(sc - mn); }
    ps[lid] = p;
    l = l * corr + wsum(lid, p);
    let cnt = min(WG, hi - s0);
    for (var j = 0u; j < ${256 / WG}u; j++) {
      let d = lid + j * WG;
      if (d < D) {
        var a = acc[j] * corr;
        for (var i = 0u; i < cnt; i++) {
          let pi = ps[i];
          if (pi != 0.0) { a = a + pi * v_((b * S + s0 + i) * Hkv * D + hk * D + d); }
        }
        acc[j] = a;
      }
    }
    m = mn;
    workgroupBarrier();
  }
  for (var j = 0u; j < ${256 / WG}u; j++) {
    let d = lid + j * WG;
    if (d < D) { out_w(qo + d, select(acc[j] / l, 0.0, is_ninf(m))); }
  }
  if (lid == 0u) { lse_w((b * Hq + h) * T + t, select(m + log(l), ninf(), is_ninf(m))); }`,
  }));

  // pass 0: ld[0, n) = lse, ld[n, 2n) = Δ = dout·out per (b, h, t), n = B·Hq·T
  const delta = K.get('attentionDelta', `${WG}`, () => ({
    ops: [['ld', 'f32'], ['lse', 'f32'], ['dout', 'f32'], ['out', 'f32']],
    params: PARAMS,
    wg: WG,
    decls: COMMON,
    body: /* wgsl */ `
  let t = wg % T;
  let h = (wg / T) % Hq;
  let b = wg / (T * Hq);
  let oo = (b * T + t) * Hq * D + h * D;
  var s = 0.0;
  for (var d = lid; d < D; d += WG) { s = s + dout_(oo + d) * out_(oo + d); }
  s = wsum(lid, s);
  let n = B * Hq * T;
  if (lid == 0u) { ld_w(wg, lse_((b * Hq + h) * T + t)); ld_w(n + wg, s); }`,
  }));

  // pass 1: dq per (b, h, t)
  const dqK = K.get('attentionBackwardQ', `${WG}`, () => ({
    ops: [['dq', 'f32'], ['dout', 'f32'], ['q', 'f32'], ['k', 'f32'], ['v', 'f32'], ['ld', 'f32'], ['mask', 'f32']],
    params: PARAMS,
    wg: WG,
    decls: COMMON,
    body: /* wgsl */ `
${QUERY_ROW}
  for (var d = lid; d < D; d += WG) { row[d] = q_(qo + d); row2[d] = dout_(qo + d); }
  workgroupBarrier();
  let L = ld_(wg);
  let dlt = ld_(B * Hq * T + wg);
${RANGE}
  var acc: array<f32, ${256 / WG}>;
  for (var j = 0u; j < ${256 / WG}u; j++) { acc[j] = 0.0; }
  {
    for (var s0 = lo; s0 < hi; s0 += WG) {
      let s = s0 + lid;
      var g = 0.0;
      if (s < hi && !is_ninf(L)) {
        let ko = (b * S + s) * Hkv * D + hk * D;
        var dot = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < D; d++) { dot = dot + row[d] * k_(ko + d); dp = dp + row2[d] * v_(ko + d); }
        let p = exp(scale * dot + ${MASK('b', 't', 's')} - L);
        g = p * (dp - dlt) * scale;
      }
      ds[lid] = g;
      workgroupBarrier();
      let cnt = min(WG, hi - s0);
      for (var j = 0u; j < ${256 / WG}u; j++) {
        let d = lid + j * WG;
        if (d < D) {
          var a = acc[j];
          for (var i = 0u; i < cnt; i++) {
            let gi = ds[i];
            if (gi != 0.0) { a = a + gi * k_((b * S + s0 + i) * Hkv * D + hk * D + d); }
          }
          acc[j] = a;
        }
      }
      workgroupBarrier();
    }
  }
  for (var j = 0u; j < ${256 / WG}u; j++) {
    let d = lid + j * WG;
    if (d < D) { dq_w(qo + d, acc[j]); }
  }`,
  }));

  // pass 2: dk, dv per (b, hkv, s)
  const dkvK = K.get('attentionBackwardKV', `${WG}`, () => ({
    ops: [['dk', 'f32'], ['dv', 'f32'], ['dout', 'f32'], ['q', 'f32'], ['k', 'f32'], ['v', 'f32'], ['ld', 'f32'], ['mask', 'f32']],
    params: PARAMS,
    wg: WG,
    decls: COMMON,
    body: /* wgsl */ `
  let s = wg % S;
  let hk = (wg / S) % Hkv;
  let b = wg / (S * Hkv);
  let ko = (b * S + s) * Hkv * D + hk * D;
  for (var d = lid; d < D; d += WG) { row[d] = k_(ko + d); row2[d] = v_(ko + d); }
  workgroupBarrier();
  // queries that see key s: t + S − T ≥ s (causal) and t + S − T − s < window
  var t0 = 0u;
  if (causal == 1u && s + T > S) { t0 = s + T - S; }
  var t1 = T;
  if (window > 0u) { t1 = min(T, max(t0, s + T + window - S)); if (s + T + window <= S) { t1 = 0u; } }
  let G = Hq / Hkv;
  let n = B * Hq * T;
  var ak: array<f32, ${256 / WG}>;
  var av: array<f32, ${256 / WG}>;
  for (var j = 0u; j < ${256 / WG}u; j++) { ak[j] = 0.0; av[j] = 0.0; }
  for (var h = hk * G; h < hk * G + G; h++) {
    for (var u0 = t0; u0 < t1; u0 += WG) {
      let t = u0 + lid;
      var p = 0.0;
      var g = 0.0;
      if (t < t1) {
        let r = (b * Hq + h) * T + t;
        let L = ld_(r);
        if (!is_ninf(L)) {
          let qo = (b * T + t) * Hq * D + h * D;
          var dot = 0.0;
          var dp = 0.0;
          for (var d = 0u; d < D; d++) { dot = dot + q_(qo + d) * row[d]; dp = dp + dout_(qo + d) * row2[d]; }
          p = exp(scale * dot + ${MASK('b', 't', 's')} - L);
          g = p * (dp - ld_(n + r)) * scale;
        }
      }
      ps[lid] = p;
      ds[lid] = g;
      workgroupBarrier();
      let cnt = min(WG, t1 - u0);
      for (var j = 0u; j < ${256 / WG}u; j++) {
        let d = lid + j * WG;
        if (d < D) {
          var a = ak[j];
          var c = av[j];
          for (var i = 0u; i < cnt; i++) {
            let qo = (b * T + u0 + i) * Hq * D + h * D + d;
            if (ps[i] != 0.0) { c = c + ps[i] * dout_(qo); }
            if (ds[i] != 0.0) { a = a + ds[i] * q_(qo); }
          }
          ak[j] = a;
          av[j] = c;
        }
      }
      workgroupBarrier();
    }
  }
  for (var j = 0u; j < ${256 / WG}u; j++) {
    let d = lid + j * WG;
    if (d < D) { dk_w(ko + d, ak[j]); dv_w(ko + d, av[j]); }
  }`,
  }));

  return {
    attentionForward(out, lse, q, k, v, a) {
      check(a);
      fwd.run([out, lse, q, k, v, a.mask ?? null], argsParams(a), a.B * a.Hq * a.T);
    },
    attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, a) {
      check(a);
      const p = argsParams(a);
      const n = a.B * a.Hq * a.T;
      const ld = ctx.allocF32(2 * n);
      delta.run([ld, lse, dout, out], p, n);
      dqK.run([dq, dout, q, k, v, ld, a.mask ?? null], p, n);
      dkvK.run([dk, dv, dout, q, k, v, ld, a.mask ?? null], p, a.B * a.Hkv * a.S);
      ctx.retire(ld);
    },
  };
}

export { groupsFor };
