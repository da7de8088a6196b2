// Fused attention, the plain way: for each (batch, query head, query) build the score row
// over the visible keys, softmax it, and mix the values. Backward recomputes the same row
// from q, k and the saved log-sum-exp.
import type { AttentionArgs, Backend } from '../types.js';

/**
 * Writes the score row scale·q_t·k_s + mask for query t of head h in batch b into
 * row[S] (−Infinity for hidden keys: after the query when causal, outside the sliding
 * window) and returns the number of keys causality lets it see.
 */
function scoreRow(row: Float64Array, q: Float32Array, k: Float32Array, a: AttentionArgs, b: number, h: number, t: number): number {
  const { T, S, Hq, Hkv, D, scale, mask } = a;
  const hk = Math.floor(h / (Hq / Hkv));
  const qo = (b * T + t) * Hq * D + h * D;
  const seen = a.causal ? t + S - T + 1 : S;
  // a sliding window hides keys window or more slots before the query
  const lo = a.window ? Math.max(0, t + S - T - a.window + 1) : 0;
  const fullMask = mask ? mask.length !== a.B * S : false;
  for (let s = 0; s < S; s++) {
    if (s >= seen || s < lo) {
      row[s] = -Infinity;
      continue;
    }
    const ko = (b * S + s) * Hkv * D + hk * D;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += q[qo + d]! * k[ko + d]!;
    let m = 0;
    if (mask) m = mask[fullMask ? (b * T + t) * S + s : b * S + s]!;
    row[s] = scale * dot + m;
  }
  return seen;
}

export const attentionForward: Backend['attentionForward'] = (out, lse, q, k, v, a) => {
  // out[B,T,Hq·D], lse[B,Hq,T], q[B,T,Hq·D], k[B,S,Hkv·D], v[B,S,Hkv·D], mask[B,S] or [B,T,S]
  const { B, T, S, Hq, Hkv, D } = a;
  const row = new Float64Array(S);
  const acc = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / (Hq / Hkv));
      for (let t = 0; t < T; t++) {
        scoreRow(row, q, k, a, b, h, t);
        let max = -Infinity;
        for (let s = 0; s < S; s++) max = Math.max(max, row[s]!);
        const oo = (b * T + t) * Hq * D + h * D;
        if (max === -Infinity) {
          // every key hidden: zeros, and lse = −Infinity (log of an empty sum)
          out.fill(0, oo, oo + D);
          lse[(b * Hq + h) * T + t] = -Infinity;
          continue;
        }
        let sum = 0;
        acc.fill(0);
        for (let s = 0; s < S; s++) {
          const p = Math.exp(row[s]! - max);
          sum += p;
          if (p === 0) continue;
          const vo = (b * S + s) * Hkv * D + hk * D;
          for (let d = 0; d < D; d++) acc[d] = acc[d]! + p * v[vo + d]!;
        }
        for (let d = 0; d < D; d++) out[oo + d] = acc[d]! / sum;
        lse[(b * Hq + h) * T + t] = max + Math.log(sum);
      }
    }
  }
};

export const attentionBackward: Backend['attentionBackward'] = (dq, dk, dv, dout, q, k, v, out, lse, a) => {
  // dq[B,T,Hq·D], dk[B,S,Hkv·D], dv[B,S,Hkv·D] (all written), dout[B,T,Hq·D],
  // q[B,T,Hq·D], k[B,S,Hkv·D], v[B,S,Hkv·D], out[B,T,Hq·D], lse[B,Hq,T]
  // p_s = exp(score_s − lse); dv_s = Σ p_s·dout; ds_s = p_s·(dout·v_s − dout·out);
  // dq = scale·Σ_s ds_s·k_s; dk_s = Σ scale·ds_s·q
  const { B, T, S, Hq, Hkv, D, scale } = a;
  dq.fill(0, 0, B * T * Hq * D);
  dk.fill(0, 0, B * S * Hkv * D);
  dv.fill(0, 0, B * S * Hkv * D);
  const row = new Float64Array(S);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const hk = Math.floor(h / (Hq / Hkv));
      for (let t = 0; t < T; t++) {
        const L = lse[(b * Hq + h) * T + t]!;
        if (L === -Infinity) continue; // every key hidden: the output was a constant 0
        scoreRow(row, q, k, a, b, h, t);
        const oo = (b * T + t) * Hq * D + h * D;
        let dOut = 0;
        for (let d = 0; d < D; d++) dOut += dout[oo + d]! * out[oo + d]!;
        for (let s = 0; s < S; s++) {
          const p = Math.exp(row[s]! - L);
          if (p === 0) continue;
          const ko = (b * S + s) * Hkv * D + hk * D;
          let dp = 0;
          for (let d = 0; d < D; d++) {
            dp += dout[oo + d]! * v[ko + d]!;
            dv[ko + d] = dv[ko + d]! + p * dout[oo + d]!;
          }
          const ds = p * (dp - dOut) * scale;
          for (let d = 0; d < D; d++) {
            dq[oo + d] = dq[oo + d]! + ds * k[ko + d]!;
            dk[ko + d] = dk[ko + d]! + ds * q[oo + d]!;
          }
        }
      }
    }
  }
};
