// Reference kernels other than GEMM: plain TypeScript, simple and obviously right. They are
// the oracle the native kernels are tested against, so clarity wins over speed: sums are
// taken in f64 (JavaScript numbers) and rounded to f32 once, when stored.
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../tensor/half.js';
import type { Backend } from '../types.js';
import { reader } from './read.js';

export { attentionBackward, attentionForward } from './attention.js';
export { geluBackward, geluForward } from './gelu.js';

// ---- elementwise and reductions ----

export const add: Backend['add'] = (out, a, b) => {
  // out[n], a[n], b[n]
  for (let i = 0; i < out.length; i++) out[i] = a[i]! + b[i]!;
};

export const axpy: Backend['axpy'] = (y, x, alpha) => {
  // y[n], x[n]
  for (let i = 0; i < y.length; i++) y[i] = y[i]! + alpha * x[i]!;
};

export const scale: Backend['scale'] = (out, a, s) => {
  // out[n], a[n]
  for (let i = 0; i < out.length; i++) out[i] = a[i]! * s;
};

export const sumSquares: Backend['sumSquares'] = (x) => {
  // x[n] -> Σ x² in f64
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return s;
};

export const widen: Backend['widen'] = (out, src, dtype) => {
  // out[n] f32, src[n] f16/bf16 bits
  const f = dtype === 'bf16' ? bf16ToF32 : f16ToF32;
  for (let i = 0; i < out.length; i++) out[i] = f(src[i]!);
};

export const narrow: Backend['narrow'] = (out, src, dtype) => {
  // out[n] f16/bf16 bits, src[n] f32
  const f = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
  for (let i = 0; i < out.length; i++) out[i] = f(src[i]!);
};

// ---- bias ----

export const biasAdd: Backend['biasAdd'] = (out, bias, M, N, biasDtype) => {
  // out[M,N], bias[N]
  const b = reader(bias, biasDtype);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) out[i * N + j] = out[i * N + j]! + b(j);
};

export const biasBackward: Backend['biasBackward'] = (dbias, dout, M, N) => {
  // dbias[N], dout[M,N]
  for (let j = 0; j < N; j++) {
    let s = 0;
    for (let i = 0; i < M; i++) s += dout[i * N + j]!;
    dbias[j] = dbias[j]! + s;
  }
};

// ---- normalisation ----

export const rmsnormForward: Backend['rmsnormForward'] = (out, rstd, inp, weight, N, C, eps, weightDtype) => {
  // out[N,C], rstd[N], inp[N,C], weight[C]
  const w = reader(weight, weightDtype);
  for (let n = 0; n < N; n++) {
    const x = n * C;
    let ss = 0;
    for (let c = 0; c < C; c++) ss += inp[x + c]! * inp[x + c]!;
    const r = 1 / Math.sqrt(ss / C + eps);
    for (let c = 0; c < C; c++) out[x + c] = inp[x + c]! * r * w(c);
    rstd[n] = r;
  }
};

export const rmsnormBackward: Backend['rmsnormBackward'] = (dinp, dweight, dout, inp, weight, rstd, N, C, weightDtype) => {
  // dinp[N,C] | null, dweight[C] | null, dout[N,C], inp[N,C], weight[C], rstd[N]
  // y = x·r·w with r = (mean(x²) + eps)^-½:  dx_i = r·w_i·dy_i − x_i·r³/C · Σ_j dy_j·w_j·x_j
  const w = reader(weight, weightDtype);
  for (let n = 0; n < N; n++) {
    const x = n * C;
    const r = rstd[n]!;
    if (dinp) {
      let dot = 0;
      for (let c = 0; c < C; c++) dot += dout[x + c]! * w(c) * inp[x + c]!;
      const k = (dot * r * r * r) / C;
      for (let c = 0; c < C; c++) dinp[x + c] = dinp[x + c]! + r * w(c) * dout[x + c]! - inp[x + c]! * k;
    }
    if (dweight) for (let c = 0; c < C; c++) dweight[c] = dweight[c]! + dout[x + c]! * inp[x + c]! * r;
  }
};

export const layernormForward: Backend['layernormForward'] = (out, mean, rstd, inp, weight, bias, N, C, eps, paramDtype) => {
  // out[N,C], mean[N], rstd[N], inp[N,C], weight[C], bias[C] | null (biased variance, as PyTorch)
  const w = reader(weight, paramDtype);
  const b = bias ? reader(bias, paramDtype) : null;
  for (let n = 0; n < N; n++) {
    const x = n * C;
    let s = 0;
    for (let c = 0; c < C; c++) s += inp[x + c]!;
    const m = s / C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (inp[x + c]! - m) ** 2;
    const r = 1 / Math.sqrt(v / C + eps);
    for (let c = 0; c < C; c++) out[x + c] = (inp[x + c]! - m) * r * w(c) + (b ? b(c) : 0);
    mean[n] = m;
    rstd[n] = r;
  }
};

export const layernormBackward: Backend['layernormBackward'] = (dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C, paramDtype) => {
  // dinp[N,C] | null, dweight[C] | null, dbias[C] | null, dout[N,C], inp[N,C], weight[C], mean[N], rstd[N]
  // with x̂ = (x − mean)·r and g = dy·w:  dx = r·(g − mean(g) − x̂·mean(g·x̂))
  const w = reader(weight, paramDtype);
  for (let n = 0; n < N; n++) {
    const x = n * C;
    const m = mean[n]!;
    const r = rstd[n]!;
    if (dinp) {
      let gs = 0;
      let gx = 0;
      for (let c = 0; c < C; c++) {
        const g = dout[x + c]! * w(c);
        gs += g;
        gx += g * (inp[x + c]! - m) * r;
      }
      gs /= C;
      gx /= C;
      for (let c = 0; c < C; c++) {
        const xhat = (inp[x + c]! - m) * r;
        dinp[x + c] = dinp[x + c]! + r * (dout[x + c]! * w(c) - gs - xhat * gx);
      }
    }
    for (let c = 0; c < C; c++) {
      if (dweight) dweight[c] = dweight[c]! + dout[x + c]! * (inp[x + c]! - m) * r;
      if (dbias) dbias[c] = dbias[c]! + dout[x + c]!;
    }
  }
};

export const softmax: Backend['softmax'] = (out, inp, N, C) => {
  // out[N,C], inp[N,C]; a row that is all -Infinity gives zeros
  const row = new Float64Array(C);
  for (let n = 0; n < N; n++) {
    const x = n * C;
    let max = -Infinity;
    for (let c = 0; c < C; c++) max = Math.max(max, inp[x + c]!);
    if (max === -Infinity) {
      out.fill(0, x, x + C);
      continue;
    }
    let sum = 0;
    for (let c = 0; c < C; c++) sum += row[c] = Math.exp(inp[x + c]! - max);
    for (let c = 0; c < C; c++) out[x + c] = row[c]! / sum;
  }
};

// ---- activations ----

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export const siluForward: Backend['siluForward'] = (out, inp) => {
  // out[n], inp[n]
  for (let i = 0; i < out.length; i++) out[i] = inp[i]! * sigmoid(inp[i]!);
};

export const siluBackward: Backend['siluBackward'] = (dinp, inp, dout) => {
  // dinp[n], inp[n], dout[n];  silu'(x) = σ(x)·(1 + x·(1 − σ(x)))
  for (let i = 0; i < dinp.length; i++) {
    const x = inp[i]!;
    const s = sigmoid(x);
    dinp[i] = dinp[i]! + dout[i]! * s * (1 + x * (1 - s));
  }
};

export const swigluForward: Backend['swigluForward'] = (out, gate, up) => {
  // out[n], gate[n], up[n]
  for (let i = 0; i < out.length; i++) out[i] = gate[i]! * sigmoid(gate[i]!) * up[i]!;
};

export const swigluBackward: Backend['swigluBackward'] = (dgate, dup, dout, gate, up, accumulate = true) => {
  // dgate[n], dup[n], dout[n], gate[n], up[n]
  for (let i = 0; i < dout.length; i++) {
    const g = gate[i]!;
    const s = sigmoid(g);
    dgate[i] = (accumulate ? dgate[i]! : 0) + dout[i]! * up[i]! * s * (1 + g * (1 - s));
    dup[i] = (accumulate ? dup[i]! : 0) + dout[i]! * g * s;
  }
};

// ---- embedding ----

export const embeddingForward: Backend['embeddingForward'] = (out, ids, table, N, C, tableDtype) => {
  // out[N,C], ids[N], table[V,C]
  const w = reader(table, tableDtype);
  for (let n = 0; n < N; n++) {
    const row = ids[n]! * C;
    for (let c = 0; c < C; c++) out[n * C + c] = w(row + c);
  }
};

export const embeddingBackward: Backend['embeddingBackward'] = (dtable, dout, ids, N, C) => {
  // dtable[V,C], dout[N,C], ids[N]
  for (let n = 0; n < N; n++) {
    const row = ids[n]! * C;
    for (let c = 0; c < C; c++) dtable[row + c] = dtable[row + c]! + dout[n * C + c]!;
  }
};

// ---- rotary position embedding ----

export const rope: Backend['rope'] = (x, cos, sin, positions, B, T, H, D, interleaved, inverse, src) => {
  // x[B,T,H,D] in place (or from src), cos[P,D/2], sin[P,D/2], positions[B·T]
  const from = src ?? x;
  // pair i is (i, i + D/2) half-split, (2i, 2i + 1) interleaved; (a, b) -> (a·c − b·s, a·s + b·c)
  const half = D / 2;
  for (let bt = 0; bt < B * T; bt++) {
    const p = positions[bt]! * half;
    for (let h = 0; h < H; h++) {
      const base = (bt * H + h) * D;
      for (let i = 0; i < half; i++) {
        const c = cos[p + i]!;
        const s = inverse ? -sin[p + i]! : sin[p + i]!;
        const ia = base + (interleaved ? 2 * i : i);
        const ib = base + (interleaved ? 2 * i + 1 : i + half);
        const a = from[ia]!;
        const b = from[ib]!;
        x[ia] = a * c - b * s;
        x[ib] = a * s + b * c;
      }
    }
  }
};

// ---- loss ----

/** log Σ exp(row[c]) over c in [x, x + V), in f64 */
function logSumExp(row: Float32Array, x: number, V: number): number {
  let max = -Infinity;
  for (let c = 0; c < V; c++) max = Math.max(max, row[x + c]!);
  let sum = 0;
  for (let c = 0; c < V; c++) sum += Math.exp(row[x + c]! - max);
  return max + Math.log(sum);
}

export const crossEntropyForward: Backend['crossEntropyForward'] = (losses, logits, targets, N, V, ignoreIndex) => {
  // losses[N], logits[N,V], targets[N]
  for (let n = 0; n < N; n++) {
    const t = targets[n]!;
    losses[n] = t === ignoreIndex ? 0 : logSumExp(logits, n * V, V) - logits[n * V + t]!;
  }
};

export const crossEntropyBackward: Backend['crossEntropyBackward'] = (dlogits, logits, targets, N, V, gradScale, ignoreIndex) => {
  // dlogits[N,V] (written; may alias logits), logits[N,V], targets[N]
  for (let n = 0; n < N; n++) {
    const x = n * V;
    const t = targets[n]!;
    if (t === ignoreIndex) {
      dlogits.fill(0, x, x + V);
      continue;
    }
    const lse = logSumExp(logits, x, V);
    for (let c = 0; c < V; c++) dlogits[x + c] = (Math.exp(logits[x + c]! - lse) - (c === t ? 1 : 0)) * gradScale;
  }
};

export const crossEntropyLossGrad: Backend['crossEntropyLossGrad'] = (losses, dlogits, logits, targets, N, V, gradScale, ignoreIndex) => {
  crossEntropyForward(losses, logits, targets, N, V, ignoreIndex); // before dlogits may overwrite logits
  crossEntropyBackward(dlogits, logits, targets, N, V, gradScale, ignoreIndex);
};

// ---- optimizer ----

export const adamw: Backend['adamw'] = (param, grad, m, v, args) => {
  // param[n], grad[n], m[n], v[n] (PyTorch AdamW: decay first, then the bias-corrected step)
  const { lr, beta1, beta2, eps, weightDecay, step } = args;
  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i]!;
    const mi = beta1 * m[i]! + (1 - beta1) * g;
    const vi = beta2 * v[i]! + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const p = param[i]! * (1 - lr * weightDecay);
    param[i] = p - (lr * (mi / bc1)) / (Math.sqrt(vi / bc2) + eps);
  }
};
