// Helpers for composite layers that hold RowLayer children by name (so LoRA injection can
// swap a Linear for a wrapper through Module.setModule without the parent noticing).
import { getBackend } from '../backend/index.js';
import type { RowLayer } from './linear.js';
import type { Module } from './module.js';

/** The child at `name` as a RowLayer; throws naming the parent and child if it is not one. */
export function childRowLayer(parent: Module, name: string, what: string): RowLayer {
  const m = parent.getModule(name) as Partial<RowLayer>;
  if (typeof m.forward !== 'function' || typeof m.backward !== 'function' || typeof m.inFeatures !== 'number' || typeof m.outFeatures !== 'number') {
    throw new TypeError(`${what}: child "${name}" (${(m as object).constructor.name}) does not implement RowLayer (inFeatures, outFeatures, forward, backward)`);
  }
  return m as RowLayer;
}

/**
 * layer.backward(dy, into), for any RowLayer: the layer's dx added into `into` (returned), or,
 * without `into`, the layer's own dx. A layer that returned its own dx although given `into`
 * has it added here.
 */
export function addInputGrad(layer: RowLayer, dy: Float32Array, into: Float32Array | undefined): Float32Array | null {
  const dx = layer.backward(dy, into);
  if (!into || !dx || dx === into) return dx;
  getBackend().add(into, into, dx);
  return into;
}

/** Whether any parameter below `m` is trainable (a backward with nothing to do can be skipped). */
export function hasTrainable(m: Module): boolean {
  for (const p of m.parameters()) if (p.requiresGrad) return true;
  return false;
}
