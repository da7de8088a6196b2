// Reference kernels for the accumulators, copies, row/column operations, masks, tanh and SGD:
// the loops the layers above the backend used to run themselves (docs/ARCHITECTURE.md
// §Backend memory). Sums are taken in f64 and rounded to f32 once, when stored.
import type { Backend } from '../types.js';
import { reader } from './read.js';

// ---- accumulators ----

export const sumInto: Backend['sumInto'] = (acc, slot, x, offset = 0, n) => {
  const end = n === undefined ? x.length : offset + n;
  let s = 0;
  for (let i = offset; i < end; i++) s += x[i]!;
  acc[slot] = acc[slot]! + s;
};

export const sumSquaresInto: Backend['sumSquaresInto'] = (acc, slot, x) => {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  acc[slot] = acc[slot]! + s;
};

export const clipByNorm: Backend['clipByNorm'] = (x, acc, slot, maxNorm) => {
  const norm = Math.sqrt(acc[slot]!);
  if (!Number.isFinite(norm)) return;
  const factor = maxNorm / (norm + 1e-6);
  if (!(factor < 1)) return;
  for (let i = 0; i < x.length; i++) x[i] = x[i]! * factor;
};

// ---- copies, rows and columns ----

export const copy2d: Backend['copy2d'] = (dst, src, g) => {
  const { rows, cols } = g;
  const d0 = g.dstOffset ?? 0;
  const s0 = g.srcOffset ?? 0;
  const ds = g.dstStride ?? cols;
  const ss = g.srcStride ?? cols;
  for (let r = 0; r < rows; r++) {
    const d = d0 + r * ds;
    const s = s0 + r * ss;
    if (g.accumulate) for (let c = 0; c < cols; c++) dst[d + c] = dst[d + c]! + src[s + c]!;
    else for (let c = 0; c < cols; c++) dst[d + c] = src[s + c]!;
  }
};

export const mul: Backend['mul'] = (out, a, b) => {
  for (let i = 0; i < out.length; i++) out[i] = a[i]! * b[i]!;
};

export const div: Backend['div'] = (out, a, b) => {
  for (let i = 0; i < out.length; i++) out[i] = a[i]! / b[i]!;
};

export const addRowVector: Backend['addRowVector'] = (out, v, alpha, N, C) => {
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) out[n * C + c] = out[n * C + c]! + alpha * v[c]!;
};

export const scaleColumns: Backend['scaleColumns'] = (out, x, v, shift, N, C) => {
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) out[n * C + c] = (v[c]! + shift) * x[n * C + c]!;
};

export const columnSums: Backend['columnSums'] = (out, x, v, shift, alpha, N, C) => {
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let n = 0; n < N; n++) s += x[n * C + c]!;
    out[c] = out[c]! + alpha * (v ? v[c]! + shift : 1) * s;
  }
};

export const columnDots: Backend['columnDots'] = (out, a, b, d, N, C) => {
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let n = 0; n < N; n++) s += a[n * C + c]! * b[n * C + c]!;
    out[c] = out[c]! + s / d[c]!;
  }
};

export const doraCombine: Backend['doraCombine'] = (out, P, wx, g, bias, N, O, biasDtype) => {
  const b = bias ? reader(bias, biasDtype) : null;
  for (let n = 0; n < N; n++) {
    const row = n * O;
    for (let o = 0; o < O; o++) {
      if (wx) {
        const p = P[row + o]! + wx[row + o]!;
        P[row + o] = p;
        out[row + o] = out[row + o]! + g[o]! * p - wx[row + o]!;
      } else {
        const bo = b ? b(o) : 0;
        const p = P[row + o]! + out[row + o]! - bo;
        P[row + o] = p;
        out[row + o] = g[o]! * p + bo;
      }
    }
  }
};

export const weightRowNorms: Backend['weightRowNorms'] = (out, w, wDtype, transposed, delta, o0, rows, O, I) => {
  const rd = reader(w, wDtype);
  for (let j = 0; j < rows; j++) {
    const o = o0 + j;
    let ss = 0;
    for (let i = 0; i < I; i++) {
      const v = rd(transposed ? i * O + o : o * I + i) + (delta ? delta[j * I + i]! : 0);
      ss += v * v;
    }
    out[o] = Math.sqrt(ss);
  }
};

export const scaleWeightRows: Backend['scaleWeightRows'] = (w, num, den, transposed, O, I) => {
  for (let o = 0; o < O; o++) {
    const f = num[o]! / den[o]!;
    for (let i = 0; i < I; i++) {
      const k = transposed ? i * O + o : o * I + i;
      w[k] = w[k]! * f;
    }
  }
};

// ---- masks ----

export const additiveMask: Backend['additiveMask'] = (out, mask, B, S) => {
  for (let i = 0; i < B * S; i++) out[i] = mask[i] ? 0 : -Infinity;
};

export const addMasks: Backend['addMasks'] = (out, bias, own, B, T, S) => {
  const full = own.length === B * T * S;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const row = (b * T + t) * S;
      for (let s = 0; s < S; s++) out[row + s] = bias[row + s]! + (full ? own[row + s]! : own[b * S + s]!);
    }
  }
};

// ---- tanh, SGD ----

export const tanhForward: Backend['tanhForward'] = (out, inp) => {
  for (let i = 0; i < out.length; i++) out[i] = Math.tanh(inp[i]!);
};

export const tanhBackward: Backend['tanhBackward'] = (dinp, y, dout) => {
  for (let i = 0; i < dinp.length; i++) dinp[i] = dout[i]! * (1 - y[i]! * y[i]!);
};

export const sgd: Backend['sgd'] = (w, g, buf, a) => {
  const { lr, momentum: mu, dampening, weightDecay: wd, nesterov, first } = a;
  for (let j = 0; j < g.length; j++) {
    let d = g[j]! + wd * w[j]!;
    if (buf) {
      buf[j] = first ? d : mu * buf[j]! + (1 - dampening) * d;
      d = nesterov ? d + mu * buf[j]! : buf[j]!;
    }
    w[j] = w[j]! - lr * d;
  }
};
