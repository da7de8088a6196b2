// GELU, exact (x·Φ(x), Φ through erf) or the tanh approximation (gelu_new, PyTorch
// approximate='tanh'). JavaScript has no Math.erf, so erf is computed here to f64 accuracy.
import type { Backend } from '../types.js';

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const K_TANH = Math.sqrt(2 / Math.PI);

/** erfc(x) for x ≥ 2 by its continued fraction, √π·e^{x²}·erfc(x) = 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))) */
function erfcLarge(x: number): number {
  let f = x;
  for (let k = 80; k >= 1; k--) f = x + k / 2 / f;
  return Math.exp(-x * x) / (Math.sqrt(Math.PI) * f);
}

/** erf(x) to about 1e-14: Maclaurin series below |x| = 2, continued fraction above. */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a >= 2) {
    const r = 1 - erfcLarge(a);
    return x < 0 ? -r : r;
  }
  // Σ (-1)^n x^{2n+1} / (n!·(2n+1))
  const x2 = x * x;
  let term = x; // (-1)^n x^{2n+1} / n!
  let sum = x;
  for (let n = 1; n < 60; n++) {
    term *= -x2 / n;
    const t = term / (2 * n + 1);
    sum += t;
    if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
  }
  return TWO_OVER_SQRT_PI * sum;
}

/** Φ(x), the standard normal CDF, accurate in the far left tail too */
function normalCdf(x: number): number {
  const z = x * SQRT1_2;
  if (z <= -2) return 0.5 * erfcLarge(-z);
  return 0.5 * (1 + erf(z));
}

export function gelu(x: number, approx: 'none' | 'tanh'): number {
  if (approx === 'tanh') return 0.5 * x * (1 + Math.tanh(K_TANH * (x + 0.044715 * x * x * x)));
  return x * normalCdf(x);
}

export function geluGrad(x: number, approx: 'none' | 'tanh'): number {
  if (approx === 'tanh') {
    const th = Math.tanh(K_TANH * (x + 0.044715 * x * x * x));
    return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * K_TANH * (1 + 3 * 0.044715 * x * x);
  }
  return normalCdf(x) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

export const geluForward: Backend['geluForward'] = (out, inp, approx) => {
  // out[n], inp[n]
  for (let i = 0; i < out.length; i++) out[i] = gelu(inp[i]!, approx);
};

export const geluBackward: Backend['geluBackward'] = (dinp, inp, dout, approx) => {
  // dinp[n], inp[n], dout[n]
  for (let i = 0; i < dinp.length; i++) dinp[i] = dinp[i]! + geluGrad(inp[i]!, approx) * dout[i]!;
};
