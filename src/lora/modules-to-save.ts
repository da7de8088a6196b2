// modules_to_save: modules trained in full (e.g. a new classifier head) and saved with the
// adapter. Each adapter gets its own copy of the module's parameters; the module stays in
// place in the tree and the copy of the adapter in use is swapped into its Parameters
// (value and gradient buffer), so any module type works without a wrapper class.
// PEFT counts the original and every copy in "all params"; so does PeftModel.
import type { Module } from '../nn/module.js';
import { Parameter } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';

export class ModulesToSave {
  readonly path: string;
  readonly module: Module;
  /** the module's own parameters (local name → the Parameter objects the module uses) */
  private readonly slots: [string, Parameter][];
  private readonly original: Map<string, Tensor>;
  private readonly copies = new Map<string, Map<string, Parameter>>();
  private current: string | null = null;

  constructor(path: string, module: Module) {
    this.path = path;
    this.module = module;
    this.slots = module.namedParameters();
    this.original = new Map(this.slots.map(([n, p]) => [n, p.value]));
  }

  get adapters(): string[] {
    return [...this.copies.keys()];
  }

  has(adapter: string): boolean {
    return this.copies.has(adapter);
  }

  /** The adapter whose copy the module uses now (null: the original). */
  get inUse(): string | null {
    return this.current;
  }

  /** Elements of one copy. */
  get size(): number {
    let n = 0;
    for (const t of this.original.values()) n += t.size;
    return n;
  }

  /** Adds a copy (f32) of the original parameters for `adapter`. */
  addCopy(adapter: string): void {
    if (this.copies.has(adapter)) throw new Error(`modules_to_save ${this.path}: adapter "${adapter}" has a copy already`);
    const copy = new Map<string, Parameter>();
    for (const [n, t] of this.original) copy.set(n, new Parameter(t.toF32().clone(), false));
    this.copies.set(adapter, copy);
  }

  deleteCopy(adapter: string): void {
    if (this.current === adapter) this.use(null);
    this.copies.delete(adapter);
  }

  /** local name → Parameter of the adapter's copy */
  copy(adapter: string): Map<string, Parameter> {
    const c = this.copies.get(adapter);
    if (!c) throw new Error(`modules_to_save ${this.path}: no copy for adapter "${adapter}"`);
    return c;
  }

  setTrainable(adapter: string, flag: boolean): void {
    for (const p of this.copy(adapter).values()) p.requiresGrad = flag;
    if (this.current === adapter) this.use(adapter);
  }

  /** Points the module's Parameters at the adapter's copy (null: the original, frozen). */
  use(adapter: string | null): void {
    const src = adapter === null ? null : this.copy(adapter);
    for (const [n, p] of this.slots) {
      if (src) {
        const c = src.get(n)!;
        p.value = c.value;
        p.grad = c.grad;
      } else {
        p.value = this.original.get(n)!;
        p.grad = null;
      }
    }
    this.current = adapter;
  }

  /** Keeps whatever the module uses now as its parameters and forgets the rest. */
  bake(): void {
    for (const [n, p] of this.slots) this.original.set(n, p.value);
    this.copies.clear();
    this.current = null;
  }
}
