// Module: a node in the model tree with named parameters and child modules. Parameter
// names, joined with dots from the root, are the checkpoint's keys
// (e.g. `model.layers.0.self_attn.q_proj.weight`).
//
// There is no autograd tape. Each layer has a forward that saves what its backward needs
// and a backward that ADDS into the gradient buffers of its trainable parameters. Frozen
// parameters have no gradient buffer and get no gradient work. One zeroGrad() per step
// clears the gradients.
import { getBackend } from '../backend/index.js';
import { ShapeError, Tensor, formatShape } from '../tensor/tensor.js';

export class Parameter {
  /** the value; f16/bf16 for a frozen half-precision base, f32 once trainable */
  value: Tensor;
  /** f32 gradient, same element count as value, allocated by the backend (a handle, docs/ARCHITECTURE.md §Backend memory); null while frozen */
  grad: Float32Array | null = null;

  constructor(value: Tensor, requiresGrad = false) {
    this.value = value;
    this.requiresGrad = requiresGrad;
  }

  get requiresGrad(): boolean {
    return this.grad !== null;
  }

  /** Trainable parameters hold f32 values: a half value is widened when made trainable. */
  set requiresGrad(flag: boolean) {
    if (flag) {
      if (this.value.dtype !== 'f32') this.value = this.value.toF32();
      if (!this.grad || this.grad.length !== this.value.size) this.grad = getBackend().memory.alloc(this.value.size);
    } else {
      this.grad = null;
    }
  }

  get shape(): readonly number[] {
    return this.value.shape;
  }

  /** The f32 data (throws for a half value). */
  get data(): Float32Array {
    return this.value.f32;
  }

  /** Replaces the value with a tensor of the same shape (any dtype unless trainable). */
  assign(t: Tensor, what = 'Parameter.assign'): void {
    t.expectShape(this.value.shape, what);
    this.value = this.requiresGrad ? t.toF32() : t;
  }
}

/**
 * Where a layer puts an output: its own buffer (kept until its next forward), scratch (read
 * by the caller at once) or shared (kept until the same layer of another block runs).
 */
export type OutputPlace = 'own' | 'scratch' | 'shared';

/**
 * The `into` of a backward(dy, into) (an input gradient to add into), checked to hold
 * [N, C]; throws naming `what` (e.g. 'Linear.backward') when it does not.
 */
export function checkInto(into: Float32Array | undefined, N: number, C: number, what: string): Float32Array | undefined {
  if (into && into.length !== N * C) throw new ShapeError(`${what}: into has ${into.length} elements, expected [${N}, ${C}] = ${N * C}`);
  return into;
}

/** Named scratch buffers a module reuses from call to call while shapes stay the same, allocated by the backend. */
export class Buffers {
  private readonly bufs = new Map<string, Float32Array>();

  /** A Float32Array of exactly n elements under `name`, reused when large enough (contents undefined). */
  get(name: string, n: number): Float32Array {
    let b = this.bufs.get(name);
    if (!b || b.length < n) {
      b = getBackend().memory.alloc(n);
      this.bufs.set(name, b);
    }
    return b.length === n ? b : b.subarray(0, n);
  }

  /** Like get(), zero-filled. */
  zeros(name: string, n: number): Float32Array {
    const b = this.get(name, n);
    b.fill(0);
    return b;
  }

  /**
   * A buffer whose contents nobody reads after the caller of the call that fills it has
   * used the result (an input gradient, an output consumed at once). Here it is the
   * module's own (same as get); inside a decoder stack it is taken from one slab that the
   * block hands out again for each stage of its forward and backward (see ScratchBuffers).
   */
  scratch(name: string, n: number): Float32Array {
    return this.get(name, n);
  }

  /**
   * A buffer kept until the same module of another block runs. Here it is the module's
   * own (same as get); inside a decoder stack the module at the same path in every block
   * uses the same array (see ScratchBuffers).
   */
  shared(name: string, n: number): Float32Array {
    return this.get(name, n);
  }

  /** The buffer for an output placed as asked (see OutputPlace). */
  place(where: OutputPlace, name: string, n: number): Float32Array {
    return where === 'scratch' ? this.scratch(name, n) : where === 'shared' ? this.shared(name, n) : this.get(name, n);
  }

  /** Ends a stage: every scratch() buffer handed out so far may be handed out again (no-op here). */
  releaseScratch(): void {}

  /** Like scratch(), zero-filled. */
  scratchZeros(name: string, n: number): Float32Array {
    const b = this.scratch(name, n);
    b.fill(0);
    return b;
  }

  /** Frees every buffer (the next get() allocates again). */
  clear(): void {
    this.bufs.clear();
  }

  /** Bytes held. */
  get bytes(): number {
    let n = 0;
    for (const b of this.bufs.values()) n += b.byteLength;
    return n;
  }
}

/** counts changes to any module tree (a child registered or replaced): see moduleTreeVersion */
let treeVersion = 0;

/**
 * A number that changes whenever a child module is registered or replaced anywhere
 * (registerModule, setModule): a model that set up its blocks' buffers under one version
 * need not walk their trees again under the same (DecoderLM's cached forwards).
 */
export function moduleTreeVersion(): number {
  return treeVersion;
}

export abstract class Module {
  private readonly params = new Map<string, Parameter>();
  private readonly modules = new Map<string, Module>();
  /** dropout and similar layers act only in training mode */
  training = true;
  /** this module's scratch buffers (activations saved for backward, outputs, input gradients) */
  buffers = new Buffers();

  protected registerParameter(name: string, p: Parameter): Parameter {
    if (this.modules.has(name)) throw new Error(`registerParameter: "${name}" is already a child module`);
    this.params.set(name, p);
    return p;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    if (this.params.has(name)) throw new Error(`registerModule: "${name}" is already a parameter`);
    this.modules.set(name, m);
    treeVersion++;
    return m;
  }

  /** Direct children, in registration order. */
  children(): [string, Module][] {
    return [...this.modules];
  }

  /** Own parameters (not the children's), in registration order. */
  ownParameters(): [string, Parameter][] {
    return [...this.params];
  }

  /** Every module below and including this one, with dotted paths ('' for this one). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, m] of this.modules) out.push(...m.namedModules(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  /** Every parameter with its full dotted name (the checkpoint key). */
  namedParameters(prefix = ''): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [name, p] of this.params) out.push([prefix ? `${prefix}.${name}` : name, p]);
    for (const [name, m] of this.modules) out.push(...m.namedParameters(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  trainableParameters(): [string, Parameter][] {
    return this.namedParameters().filter(([, p]) => p.requiresGrad);
  }

  /** The module at a dotted path below this one; throws naming the path if there is none. */
  getModule(path: string): Module {
    if (path === '') return this;
    let m: Module = this;
    for (const part of path.split('.')) {
      const next = m.modules.get(part);
      if (!next) throw new Error(`no module "${path}" (at "${part}"; children there: ${[...m.modules.keys()].join(', ') || 'none'})`);
      m = next;
    }
    return m;
  }

  /** Replaces the child at a dotted path (used to inject adapters); returns the old one. */
  setModule(path: string, replacement: Module): Module {
    const dot = path.lastIndexOf('.');
    const parent = dot < 0 ? this : this.getModule(path.slice(0, dot));
    const name = dot < 0 ? path : path.slice(dot + 1);
    const old = parent.modules.get(name);
    if (!old) throw new Error(`setModule: no module "${path}"`);
    parent.modules.set(name, replacement);
    treeVersion++;
    parent.onChildReplaced(name, old, replacement);
    return old;
  }

  /**
   * Called after setModule() swapped a direct child. Modules that keep typed references
   * to their children (this.q_proj …) override it to update them.
   */
  protected onChildReplaced(name: string, old: Module, replacement: Module): void {
    void name;
    void old;
    void replacement;
  }

  /** Sets requiresGrad on every parameter below (allocating or freeing gradient buffers). */
  requiresGrad(flag: boolean): this {
    for (const p of this.parameters()) p.requiresGrad = flag;
    return this;
  }

  /** Clears every gradient buffer. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad?.fill(0);
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Name → tensor for every parameter. */
  stateDict(): Map<string, Tensor> {
    return new Map(this.namedParameters().map(([n, p]) => [n, p.value]));
  }

  /**
   * Assigns tensors by checkpoint key. Checks every key and shape first and throws once
   * listing all problems (missing keys, unexpected keys unless allowUnexpected, shape
   * mismatches naming the tensor and both shapes).
   */
  loadStateDict(tensors: Map<string, Tensor>, opts: { strict?: boolean; allowUnexpected?: boolean } = {}): void {
    const own = new Map(this.namedParameters());
    const problems: string[] = [];
    for (const [name, p] of own) {
      const t = tensors.get(name);
      if (!t) {
        if (opts.strict !== false) problems.push(`missing tensor ${name} (expected shape ${formatShape(p.shape)})`);
      } else if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
        problems.push(`tensor ${name} has shape ${formatShape(t.shape)}, the model expects ${formatShape(p.shape)}`);
      }
    }
    if (!opts.allowUnexpected) {
      for (const name of tensors.keys()) if (!own.has(name)) problems.push(`unexpected tensor ${name}`);
    }
    if (problems.length) throw new Error(`loadStateDict: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
    for (const [name, p] of own) {
      const t = tensors.get(name);
      if (t) p.assign(t, name);
    }
  }
}

/** An ordered list of child modules named 0, 1, 2, … (like torch.nn.ModuleList). */
export class ModuleList<M extends Module = Module> extends Module {
  private readonly items: M[] = [];

  constructor(items: M[] = []) {
    super();
    for (const m of items) this.push(m);
  }

  push(m: M): void {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
  }

  get length(): number {
    return this.items.length;
  }

  at(i: number): M {
    const m = this.items[i];
    if (!m) throw new RangeError(`ModuleList: index ${i} out of range (length ${this.items.length})`);
    return m;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }

  protected override onChildReplaced(name: string, _old: Module, replacement: Module): void {
    this.items[Number(name)] = replacement as M;
  }
}
