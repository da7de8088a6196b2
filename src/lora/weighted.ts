// add_weighted_adapter (PEFT's LoraModel.add_weighted_adapter) for 'linear', 'cat' and 'svd'.
// The new adapter gets r = lora_alpha = new rank, so its scaling is 1 (and use_rslora off,
// as PEFT PR #3449 fixed), and for each layer, with s_i the source scalings and w_i the
// weights:
//   linear  all ranks equal; A = Σ sign(w_i s_i)·√|w_i s_i|·A_i, B = Σ √|w_i s_i|·B_i
//           (A and B are summed separately: not the weighted sum of the deltas in general)
//   cat     rank Σ r_i; A = [w_1 s_1 A_1; w_2 s_2 A_2; …], B = [B_1, B_2, …]: exactly Σ w_i s_i B_i A_i
//   svd     rank svdRank (default max r_i); the top singular triplets of
//           ΔW = Σ (w_i s_i)·(s_i B_i A_i) — PEFT multiplies the already scaled delta weight by
//           w_i·s_i, so s_i enters squared; lorakit follows PEFT here. B = U_r·diag(S_r), A = Vh_r.
// The SVD is computed from the factors (ΔW = B_cat·A_cat has rank ≤ Σ r_i), never from the
// full [out, in] matrix.
import type { LoraConfig } from './config.js';
import type { PeftModel } from './peft-model.js';
import { svdOfProduct } from './svd.js';

export type CombinationType = 'linear' | 'cat' | 'svd';

export interface WeightedAdapterOptions {
  /** rank of the svd result (default: the largest source rank) */
  svdRank?: number;
  /** clamp A and B of the svd result to the given quantile of their values (PEFT svd_clamp) */
  svdClamp?: number;
}

function maxRank(c: LoraConfig): number {
  return Math.max(c.r, ...Object.values(c.rank_pattern));
}

export function addWeightedAdapter(peft: PeftModel, adapters: readonly string[], weights: readonly number[], name: string, combination: CombinationType = 'svd', opts: WeightedAdapterOptions = {}): void {
  const problems: string[] = [];
  if (adapters.length === 0) problems.push('no adapters given');
  if (weights.length !== adapters.length) problems.push(`${adapters.length} adapters but ${weights.length} weights`);
  if (weights.some((w) => !Number.isFinite(w))) problems.push('weights must be finite numbers');
  const unknown = adapters.filter((a) => !peft.peftConfig.has(a));
  if (unknown.length) problems.push(`unknown adapter(s) ${unknown.join(', ')}`);
  if (peft.peftConfig.has(name)) problems.push(`adapter "${name}" exists already`);
  if (!['linear', 'cat', 'svd'].includes(combination)) problems.push(`combination must be "linear", "cat" or "svd", got ${JSON.stringify(combination)}`);
  if (problems.length) throw new Error(`addWeightedAdapter: ${problems.join('; ')}`);
  const cfgs = adapters.map((a) => peft.config(a));
  for (const [i, c] of cfgs.entries()) {
    if (c.use_dora) problems.push(`adapter ${adapters[i]} is DoRA: weighted combination is not supported for DoRA`);
    if (c.lora_bias) problems.push(`adapter ${adapters[i]} has lora_bias: weighted combination is not supported for it`);
  }
  for (const e of peft.modulesToSave.values()) {
    const holders = adapters.filter((a) => e.has(a));
    if (holders.length > 1) problems.push(`adapters ${holders.join(', ')} all have a modules_to_save copy of ${e.path}; such copies cannot be combined`);
  }
  const comb: CombinationType = adapters.length === 1 ? 'linear' : combination;
  const ranks = cfgs.map(maxRank);
  let newRank: number;
  if (comb === 'linear') {
    if (new Set(ranks).size !== 1) problems.push(`linear combination needs equal ranks, got ${ranks.join(', ')} (use "cat" or "svd")`);
    newRank = ranks[0]!;
  } else if (comb === 'cat') {
    newRank = ranks.reduce((a, b) => a + b, 0);
  } else {
    newRank = opts.svdRank ?? Math.max(...ranks);
    if (!Number.isInteger(newRank) || newRank <= 0) problems.push(`svdRank must be a positive integer, got ${newRank}`);
  }
  const kinds = new Set(cfgs.map((c) => (typeof c.target_modules === 'string' ? 'regex' : 'list')));
  if (kinds.size > 1) problems.push('all adapters must give target_modules the same way (all lists or all regular expressions)');
  if (problems.length) throw new Error(`addWeightedAdapter: ${problems.join('; ')}`);

  const targetModules: string[] | string = kinds.has('regex')
    ? cfgs.map((c) => `(${c.target_modules as string})`).join('|')
    : [...new Set(cfgs.flatMap((c) => (c.target_modules as string[] | null) ?? []))];
  const paths0 = [...peft.loraLayers].filter(([, l]) => adapters.some((a) => l.hasAdapter(a))).map(([p]) => p);
  const resolvedTargets = Array.isArray(targetModules) && targetModules.length === 0 ? paths0 : targetModules;
  const config: LoraConfig = { ...cfgs[0]!, r: newRank, lora_alpha: newRank, use_rslora: false, target_modules: resolvedTargets, rank_pattern: {}, alpha_pattern: {}, init_lora_weights: true };
  const paths = paths0;
  // the modules_to_save copy of the (single) source adapter that has one is carried over
  const copiesFrom = [...peft.modulesToSave.values()].map((e) => [e, adapters.find((a) => e.has(a))] as const);
  peft.injectAdapter(name, { ...config, modules_to_save: null }, { targets: paths });
  for (const [e, src] of copiesFrom) {
    if (!src) continue;
    e.addCopy(name);
    for (const [n, p] of e.copy(name)) p.value.f32.set(e.copy(src).get(n)!.value.toF32Array());
  }
  peft.peftConfig.set(name, config);

  for (const p of paths) {
    const l = peft.loraLayers.get(p)!;
    const t = l.adapter(name);
    const A = t.A.data;
    const B = t.B.data;
    A.fill(0);
    B.fill(0);
    const I = l.inFeatures;
    const O = l.outFeatures;
    const present = adapters.map((a, i) => [a, weights[i]!] as const).filter(([a]) => l.hasAdapter(a));
    if (comb === 'linear') {
      for (const [a, w] of present) {
        const src = l.adapter(a);
        const ws = w * src.scaling;
        const sa = Math.sqrt(Math.abs(ws)) * (ws >= 0 ? 1 : -1);
        const sb = Math.sqrt(Math.abs(ws));
        for (let i = 0; i < A.length; i++) A[i] = A[i]! + sa * src.A.data[i]!;
        for (let i = 0; i < B.length; i++) B[i] = B[i]! + sb * src.B.data[i]!;
      }
    } else if (comb === 'cat') {
      let row = 0;
      for (const [a, w] of present) {
        const src = l.adapter(a);
        const f = w * src.scaling;
        for (let k = 0; k < src.r; k++) for (let i = 0; i < I; i++) A[(row + k) * I + i] = f * src.A.data[k * I + i]!;
        for (let o = 0; o < O; o++) for (let k = 0; k < src.r; k++) B[o * newRank + row + k] = src.B.data[o * src.r + k]!;
        row += src.r;
      }
    } else {
      // ΔW = Bc·Ac with Bc = [B_1 …] [O, R], Ac = [c_1 A_1; …] [R, I], c_i = w_i·s_i·s_i
      const R = present.reduce((n, [a]) => n + l.adapter(a).r, 0);
      const Bc = new Float64Array(O * R);
      const Ac = new Float64Array(R * I);
      let row = 0;
      for (const [a, w] of present) {
        const src = l.adapter(a);
        const c = w * src.scaling * src.scaling;
        for (let k = 0; k < src.r; k++) for (let i = 0; i < I; i++) Ac[(row + k) * I + i] = c * src.A.data[k * I + i]!;
        for (let o = 0; o < O; o++) for (let k = 0; k < src.r; k++) Bc[o * R + row + k] = src.B.data[o * src.r + k]!;
        row += src.r;
      }
      const d = svdOfProduct(Bc, Ac, O, R, I);
      const keep = Math.min(newRank, d.K);
      for (let k = 0; k < keep; k++) {
        for (let o = 0; o < O; o++) B[o * newRank + k] = d.U[o * d.K + k]! * d.S[k]!;
        for (let i = 0; i < I; i++) A[k * I + i] = d.Vt[k * I + i]!;
      }
      if (opts.svdClamp !== undefined) clampQuantile(A, B, opts.svdClamp);
    }
  }
}

/** torch.quantile (linear interpolation) over A and B together, then clamp both to ±that value. */
function clampQuantile(A: Float32Array, B: Float32Array, q: number): void {
  const all = Float64Array.from([...B, ...A]).sort();
  const pos = q * (all.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(all.length - 1, lo + 1);
  const v = all[lo]! + (all[hi]! - all[lo]!) * (pos - lo);
  for (const arr of [A, B]) for (let i = 0; i < arr.length; i++) arr[i] = Math.min(v, Math.max(-v, arr[i]!));
}
