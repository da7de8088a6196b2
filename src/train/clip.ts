// Gradient clipping by global norm and the finite-value check used by the NaN/Inf guard.
import { getBackend } from '../backend/index.js';
import type { Parameter } from '../nn/module.js';

/** √(Σ over every gradient element of g²), accumulated in f64. */
export function globalGradNorm(params: readonly Parameter[]): number {
  const be = getBackend();
  let sum = 0;
  for (const p of params) if (p.grad) sum += be.sumSquares(p.grad);
  return Math.sqrt(sum);
}

/**
 * Scales every gradient so the global norm is at most maxNorm (as torch's
 * clip_grad_norm_: factor maxNorm / (norm + 1e-6), applied only when below 1).
 * Returns the norm before clipping (NaN or Infinity when a gradient is not finite).
 */
export function clipGradNorm(params: readonly Parameter[], maxNorm: number): number {
  const norm = globalGradNorm(params);
  if (!Number.isFinite(norm)) return norm;
  const factor = maxNorm / (norm + 1e-6);
  if (factor < 1) {
    const be = getBackend();
    for (const p of params) if (p.grad) be.scale(p.grad, p.grad, factor);
  }
  return norm;
}
