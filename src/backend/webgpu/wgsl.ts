// A small builder for the WebGPU backend's compute shaders (docs/ARCHITECTURE.md §WebGPU).
// A kernel names its operands and parameters; the builder declares the bindings (every
// storage binding read_write: see device.ts), one accessor per operand that applies the
// operand's element offset and widens half data (`x_(i)` reads, `x_w(i, v)` writes), and
// the parameters as `let`s at the top of `main`. The body sees `lid` (invocation in the
// workgroup), `wg` (workgroup number, x and y combined) and `gid` (wg · WG + lid).
import { GpuAcc, GpuF32, GpuU16, type GpuContext, type Operand } from './device.js';

/**
 * f32: float data; f16/bf16: 16-bit data widened on read; any: f32, f16 or bf16 told at run
 * time by the parameter `<name>Dt` (0, 1, 2: one pipeline for every dtype, see dtypeCode);
 * bits: f32 data read and written as u32 bits (exact, no denormal flush); i32: integer
 * tables; u8: bytes; acc: an accumulator.
 */
export type OpKind = 'f32' | 'f16' | 'bf16' | 'any' | 'bits' | 'i32' | 'u8' | 'acc';

/** the run-time dtype code of an `any` operand */
export function dtypeCode(d: string | undefined, isHalf: boolean): number {
  return !isHalf ? 0 : d === 'f16' ? 1 : 2;
}

export interface KernelSpec {
  ops: [string, OpKind][];
  /** parameter names; `name:f` is an f32, `name:i` an i32, else u32 */
  params: string[];
  /** invocations per workgroup (default 256) */
  wg?: number;
  /** declarations outside main (helper functions, workgroup arrays) */
  decls?: string;
  body: string;
}

export const HELPERS = /* wgsl */ `
fn widen_bf16(h: u32) -> f32 { return bitcast<f32>(h << 16u); }
fn widen_f16_bits(h: u32) -> u32 {
  let sign = (h & 0x8000u) << 16u;
  let e = (h >> 10u) & 0x1fu;
  let m = h & 0x3ffu;
  if (e == 0u) {
    if (m == 0u) { return sign; }
    return sign | bitcast<u32>(f32(m) * 5.9604644775390625e-8);
  }
  if (e == 31u) { return sign | 0x7f800000u | (m << 13u); }
  return sign | ((e + 112u) << 23u) | (m << 13u);
}
fn widen_f16(h: u32) -> f32 { return bitcast<f32>(widen_f16_bits(h)); }
fn half_at(w: u32, j: u32) -> u32 { return (w >> ((j & 1u) * 16u)) & 0xffffu; }
// exact sums of two f32 (Knuth's TwoSum): s + e == a + b
fn two_sum(a: f32, b: f32) -> vec2<f32> {
  let s = a + b;
  let bb = s - a;
  let e = (a - (s - bb)) + (b - bb);
  return vec2<f32>(s, e);
}
// double-f32 addition (hi, lo) + (hi, lo)
fn df_add(x: vec2<f32>, y: vec2<f32>) -> vec2<f32> {
  let s = two_sum(x.x, y.x);
  let t = two_sum(x.y, y.y);
  var h = two_sum(s.x, s.y + t.x);
  return two_sum(h.x, h.y + t.y);
}
// exact product of two f32 as (hi, lo) (Dekker's split, no fma needed)
fn split(a: f32) -> vec2<f32> {
  let c = 4097.0 * a;
  let hi = c - (c - a);
  return vec2<f32>(hi, a - hi);
}
fn two_prod(a: f32, b: f32) -> vec2<f32> {
  let p = a * b;
  let sa = split(a);
  let sb = split(b);
  let e = ((sa.x * sb.x - p) + sa.x * sb.y + sa.y * sb.x) + sa.y * sb.y;
  return vec2<f32>(p, e);
}
// the lowest f32 stands in for −∞ where a value must stay uniform (−∞ is no WGSL constant)
const LOWEST: f32 = -3.4028234e38;
fn is_ninf(x: f32) -> bool { return x <= LOWEST; }
fn finite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u; }
// a / b as (hi, lo): WGSL's division may be 2.5 ulp off; one exact residual corrects it
fn div_df(a: f32, b: f32) -> vec2<f32> {
  let q = a / b;
  if (!finite(q) || q == 0.0 || !finite(a)) { return vec2<f32>(q, 0.0); }
  let p = two_prod(q, b);
  return vec2<f32>(q, ((a - p.x) - p.y) / b);
}
// a / b rounded as IEEE division rounds (up to ties)
fn div_rn(a: f32, b: f32) -> f32 {
  let d = div_df(a, b);
  return d.x + d.y;
}
`;

/**
 * The accessors of one operand. `bound` is the binding it reads: its own (`B_<name>`), another
 * operand's when both are one GPUBuffer (Dawn rejects two writable bindings of one buffer
 * range in a pass, so aliased operands share a binding), or none for a null operand (reads
 * give 0, writes do nothing).
 */
/**
 * Workgroup sums and maxima of one value per invocation (a tree in workgroup memory; the
 * result is uniform, read with workgroupUniformLoad) and −∞ made at run time (a WGSL
 * constant may not be infinite). For kernels with decls; uses WG.
 */
export const REDUCE_WGSL = /* wgsl */ `
var<workgroup> red: array<f32, WG>;
fn wsum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&red[0]);
  workgroupBarrier();
  return r;
}
fn wmax(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&red[0]);
  workgroupBarrier();
  return r;
}
// −∞ (a constant expression may not be infinite in WGSL, so it is made at run time)
var<private> NEG_INF_BITS: u32 = 0xff800000u;
fn ninf() -> f32 { return bitcast<f32>(NEG_INF_BITS); }
`;

function accessor(name: string, kind: OpKind, slot: number, bound: { name: string; kind: OpKind } | null, dtSlot: number): string {
  const own = elemType(kind);
  if (!bound) {
    const rt = kind === 'acc' ? 'vec2<f32>' : kind === 'f16' || kind === 'bf16' || kind === 'any' ? 'f32' : own;
    const zero = rt === 'vec2<f32>' ? 'vec2<f32>(0.0, 0.0)' : rt === 'f32' ? '0.0' : rt === 'i32' ? '0i' : '0u';
    return `fn ${name}_(i: u32) -> ${rt} { return ${zero}; }\nfn ${name}_h(i: u32) -> u32 { return 0u; }\nfn ${name}_w(i: u32, v: ${rt}) {}`;
  }
  const b = `B_${bound.name}`;
  const theirs = elemType(bound.kind);
  const ld = (idx: string): string => (theirs === own ? `${b}[${idx}]` : `bitcast<${own}>(${b}[${idx}])`);
  const st = (idx: string, v: string): string => (theirs === own ? `${b}[${idx}] = ${v};` : `${b}[${idx}] = bitcast<${theirs}>(${v});`);
  const o = `pu(${slot}u)`;
  switch (kind) {
    case 'f32':
      return `fn ${name}_(i: u32) -> f32 { return ${ld(`${o} + i`)}; }\nfn ${name}_w(i: u32, v: f32) { ${st(`${o} + i`, 'v')} }`;
    case 'bits':
      return `fn ${name}_(i: u32) -> u32 { return ${ld(`${o} + i`)}; }\nfn ${name}_w(i: u32, v: u32) { ${st(`${o} + i`, 'v')} }`;
    case 'f16':
    case 'bf16':
      return `fn ${name}_h(i: u32) -> u32 { let j = ${o} + i; return half_at(${ld('j >> 1u')}, j); }\nfn ${name}_(i: u32) -> f32 { return widen_${kind}(${name}_h(i)); }`;
    case 'any':
      return `fn ${name}_h(i: u32) -> u32 { let j = ${o} + i; return half_at(${ld('j >> 1u')}, j); }
fn ${name}_(i: u32) -> f32 {
  let dt = pu(${dtSlot}u);
  if (dt == 0u) { return bitcast<f32>(${ld(`${o} + i`)}); }
  if (dt == 1u) { return widen_f16(${name}_h(i)); }
  return widen_bf16(${name}_h(i));
}`;
    case 'i32':
      return `fn ${name}_(i: u32) -> i32 { return ${ld(`${o} + i`)}; }`;
    case 'u8':
      return `fn ${name}_(i: u32) -> u32 { let j = ${o} + i; return (${ld('j >> 2u')} >> ((j & 3u) * 8u)) & 0xffu; }`;
    case 'acc':
      return `fn ${name}_(s: u32) -> vec2<f32> { return vec2<f32>(${ld('4u * s')}, ${ld('4u * s + 1u')}); }\nfn ${name}_w(s: u32, v: vec2<f32>) { ${st('4u * s', 'v.x')} ${st('4u * s + 1u', 'v.y')} }`;
  }
}

function elemType(kind: OpKind): string {
  return kind === 'f32' || kind === 'acc' ? 'f32' : kind === 'i32' ? 'i32' : 'u32';
}

/**
 * The shader of a spec for one binding pattern: per operand -1 (its own binding), -2 (null),
 * or the index of the earlier operand whose binding it shares.
 */
export function shaderSource(spec: KernelSpec, pattern: readonly number[]): string {
  const wg = spec.wg ?? 256;
  const nOps = spec.ops.length;
  const nWords = nOps + spec.params.length;
  const lines: string[] = [HELPERS];
  spec.ops.forEach(([name, kind], i) => {
    if (pattern[i] === -1) lines.push(`@group(0) @binding(${i}) var<storage, read_write> B_${name}: array<${elemType(kind)}>;`);
  });
  lines.push(`@group(0) @binding(${nOps}) var<uniform> P: array<vec4<u32>, ${Math.max(1, Math.ceil(nWords / 4))}>;`);
  lines.push('fn pu(i: u32) -> u32 { return P[i / 4u][i % 4u]; }');
  spec.ops.forEach(([name, kind], i) => {
    if (kind === 'any' && !spec.params.some((q) => q.split(':')[0] === `${name}Dt`)) throw new Error(`webgpu kernel: operand ${name} of kind any needs a parameter ${name}Dt`);
    const p = pattern[i]!;
    const target = p === -2 ? null : p === -1 ? { name, kind } : { name: spec.ops[p]![0], kind: spec.ops[p]![1] };
    lines.push(accessor(name, kind, i, target, nOps + spec.params.findIndex((q) => q.split(':')[0] === `${name}Dt`)));
  });
  lines.push(`const WG: u32 = ${wg}u;`);
  if (spec.decls) lines.push(spec.decls);
  const lets = spec.params.map((p, j) => {
    const [n, t] = p.split(':');
    const w = `pu(${nOps + j}u)`;
    return `  let ${n} = ${t === 'f' ? `bitcast<f32>(${w})` : t === 'i' ? `bitcast<i32>(${w})` : w};`;
  });
  lines.push(`@compute @workgroup_size(${wg})
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid3: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let lid = lid3.x;
  let wg = wid3.x + wid3.y * nwg.x;
  let gid = wg * WG + lid;
${lets.join('\n')}
${spec.body}
}`);
  return lines.join('\n');
}

/** A kernel ready to dispatch: its pipeline is built on first use and cached by key. */
export class Kernel {
  private readonly nOps: number;
  private readonly kinds: string[];
  /** per operand: whether the shader writes it (a host array may only be read) */
  private readonly written: boolean[];
  constructor(
    private readonly ctx: GpuContext,
    readonly name: string,
    private readonly key: string,
    private readonly spec: KernelSpec,
  ) {
    this.nOps = spec.ops.length;
    this.kinds = spec.params.map((p) => p.split(':')[1] ?? 'u');
    const code = spec.body + (spec.decls ?? '');
    this.written = spec.ops.map(([name]) => new RegExp(`\\b${name}_w\\(|\\bB_${name}\\[[^\\]]*\\]\\s*=[^=]`).test(code));
  }

  /** One pass: operands in spec order, parameter values in spec order, `groups` workgroups. */
  run(ops: readonly Operand[], params: readonly number[], groups: number): void {
    const words = new Uint32Array(this.nOps + params.length);
    const f = new Float32Array(words.buffer);
    const i32 = new Int32Array(words.buffer);
    ops.forEach((op, i) => {
      words[i] = op instanceof GpuF32 || op instanceof GpuU16 ? op.off : 0;
      if (op !== null && !(op instanceof GpuF32 || op instanceof GpuU16 || op instanceof GpuAcc) && this.written[i]) {
        throw new TypeError(`webgpu ${this.name}: operand ${this.spec.ops[i]![0]} is written, but it is a host ${op.constructor.name}; allocate it with backend.memory`);
      }
    });
    params.forEach((v, j) => {
      const k = this.kinds[j];
      if (k === 'f') f[this.nOps + j] = v;
      else if (k === 'i') i32[this.nOps + j] = v;
      else words[this.nOps + j] = v;
    });
    // operands that are one GPUBuffer share a binding; null ones have none
    const pattern = ops.map((op, i) => {
      if (op === null) return -2;
      if (!(op instanceof GpuF32 || op instanceof GpuU16 || op instanceof GpuAcc)) return -1;
      for (let j = 0; j < i; j++) {
        const o = ops[j];
        if ((o instanceof GpuF32 || o instanceof GpuU16 || o instanceof GpuAcc) && o.gpu === op.gpu) return j;
      }
      return -1;
    });
    const key = `${this.key}|${pattern.join(',')}`;
    const pipe = this.ctx.pipeline(key, pattern, () => shaderSource(this.spec, pattern));
    this.ctx.dispatch(this.name, pipe, ops.map((op, i) => (pattern[i] === -1 ? op : undefined)), words, groups);
  }

}

/** Kernels of one context by key (a spec per variant). */
export class Kernels {
  private readonly cache = new Map<string, Kernel>();
  constructor(private readonly ctx: GpuContext) {}
  get(name: string, variant: string, spec: () => KernelSpec): Kernel {
    const key = `${name}/${variant}`;
    let k = this.cache.get(key);
    if (!k) {
      k = new Kernel(this.ctx, name, key, spec());
      this.cache.set(key, k);
    }
    return k;
  }
}

/** workgroups for n invocations of WG each */
export function groupsFor(n: number, wg = 256): number {
  return Math.ceil(n / wg);
}
