// Helpers for composite layers that hold RowLayer children by name (so LoRA injection can
// swap a Linear for a wrapper through Module.setModule without the parent noticing).
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

/** Whether any parameter below `m` is trainable (a backward with nothing to do can be skipped). */
export function hasTrainable(m: Module): boolean {
  for (const p of m.parameters()) if (p.requiresGrad) return true;
  return false;
}
