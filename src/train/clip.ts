// Gradient clipping by global norm. The sums go through an accumulator on the backend
// (docs/ARCHITECTURE.md §Backend memory); these two read it back at once, for callers that
// want the norm as a number. The training loop does the same within its step's one readback.
import { getBackend } from '../backend/index.js';
import type { Parameter } from '../nn/module.js';

/** √(Σ over every gradient element of g²), accumulated in f64. */
export function globalGradNorm(params: readonly Parameter[]): number {
  const be = getBackend();
  const acc = be.memory.allocAccumulator(1);
  for (const p of params) if (p.grad) be.sumSquaresInto(acc, 0, p.grad);
  return Math.sqrt(acc[0]!);
}

/**
 * Scales every gradient so the global norm is at most maxNorm (as torch's
 * clip_grad_norm_: factor maxNorm / (norm + 1e-6), applied only when below 1).
 * Returns the norm before clipping (NaN or Infinity when a gradient is not finite).
 */
export function clipGradNorm(params: readonly Parameter[], maxNorm: number): number {
  const be = getBackend();
  const acc = be.memory.allocAccumulator(1);
  for (const p of params) if (p.grad) be.sumSquaresInto(acc, 0, p.grad);
  for (const p of params) if (p.grad) be.clipByNorm(p.grad, acc, 0, maxNorm);
  return Math.sqrt(acc[0]!);
}
