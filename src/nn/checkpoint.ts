// Gradient checkpointing: a block (a decoder layer) keeps only its input after forward and
// runs its forward again, from that input, right before its backward.
//
// Memory: every module inside the checkpointed blocks draws its scratch from ONE shared
// arena (a module at relative path `self_attn.q_proj` uses the same arrays in every
// block), so the activations of N blocks cost one block's, plus one saved input [N, C]
// per block and three shared [N, C] arrays (the last output, dy, dx).
//
// Randomness: the state of every Rng a block's modules hold (dropout) is recorded before
// forward and restored for the recompute, so the recompute draws the same masks; the
// stream is then put back where it was.
//
// Usage in a model (the same calls work with checkpointing off: they pass through):
//   const ckpt = new GradientCheckpointing();
//   forward:  for (const blk of layers) h = ckpt.forward(blk, h, ctx);
//   backward: for (blk of layers reversed) dh = ckpt.backward(blk, dh);
import { getBackend } from '../backend/index.js';
import { ShapeError, Tensor } from '../tensor/tensor.js';
import { Buffers, Module, Parameter } from './module.js';
import { Rng, type RngState } from '../tensor/rng.js';

/** A block that can be checkpointed: forward from rows x with some context, backward to dx. */
export interface CheckpointBlock<Ctx> extends Module {
  forward(x: Float32Array, ctx: Ctx): Float32Array;
  backward(dy: Float32Array): Float32Array | null;
}

/**
 * A module's view of a shared arena: its buffer `name` is the arena's `prefix/name`; with
 * stage slots (see ScratchArena), scratch() is taken from them instead.
 */
export class ArenaBuffers extends Buffers {
  readonly arena: Buffers;
  readonly prefix: string;
  readonly slots: ScratchArena | null;
  private readonly names = new Set<string>();

  constructor(arena: Buffers, prefix: string, slots: ScratchArena | null = null) {
    super();
    this.arena = arena;
    this.prefix = prefix;
    this.slots = slots;
  }

  override get(name: string, n: number): Float32Array {
    this.names.add(name);
    return this.arena.get(`${this.prefix}/${name}`, n);
  }

  override scratch(name: string, n: number): Float32Array {
    return this.slots ? this.slots.take(n) : this.get(name, n);
  }

  override releaseScratch(): void {
    this.slots?.release();
  }

  /** Forgets this view's names (the arena keeps its arrays: other blocks share them). */
  override clear(): void {
    this.names.clear();
  }

  /** 0: the arrays belong to the arena and are counted once there (see retainedBytes). */
  override get bytes(): number {
    return 0;
  }
}

/**
 * Scratch for a stack of blocks. Each stage of a block (attention or MLP, forward or
 * backward) takes its arrays in the same order every time, and release() ends the stage:
 * the k-th take() of every stage returns the same array (grown to the largest request it
 * has seen), so a stack needs the sum over k of the largest k-th request instead of one
 * array per module per block, and nothing is allocated once the shapes are settled. Also
 * arrays by name that the same module of every block shares (keyed).
 */
export class ScratchArena {
  readonly keyed = new Buffers();
  private readonly slots: Float32Array[] = [];
  private next = 0;

  /** n floats, valid until the next release() */
  take(n: number): Float32Array {
    const k = this.next++;
    let a = this.slots[k];
    if (!a || a.length < n) this.slots[k] = a = getBackend().memory.alloc(n);
    return a.length === n ? a : a.subarray(0, n);
  }

  release(): void {
    this.next = 0;
  }

  get bytes(): number {
    let n = this.keyed.bytes;
    for (const a of this.slots) n += a.byteLength;
    return n;
  }

  clear(): void {
    this.keyed.clear();
    this.slots.length = 0;
    this.next = 0;
  }
}

/**
 * A module's buffers inside a stack of blocks run without checkpointing: get() is its own
 * (activations its backward reads), scratch() comes from the arena's stage slots, shared() is the
 * arena's `prefix/name`, the same array for the module at that path in every block (blocks
 * run one after another).
 */
export class ScratchBuffers extends Buffers {
  readonly arena: ScratchArena;
  readonly prefix: string;

  constructor(arena: ScratchArena, prefix: string) {
    super();
    this.arena = arena;
    this.prefix = prefix;
  }

  override scratch(_name: string, n: number): Float32Array {
    return this.arena.take(n);
  }

  override shared(name: string, n: number): Float32Array {
    return this.arena.keyed.get(`${this.prefix}/${name}`, n);
  }

  override releaseScratch(): void {
    this.arena.release();
  }
}

/**
 * A module's buffers inside a stack of blocks run for inference (forwards over a KV cache,
 * which no backward can follow): as ScratchBuffers, but get() too is the arena's, by path,
 * so the blocks of a stack hold one block's activations between them instead of one set
 * each (a 512-token prompt of the generate bench's model: ~17 MB instead of ~200 MB, written
 * while they are still in cache; docs/ARCHITECTURE.md §Decoding). A block's output is then
 * the same array as the next block's input, which DecoderBlock writes only after its last
 * read of that input.
 */
export class InferenceBuffers extends ScratchBuffers {
  override get(name: string, n: number): Float32Array {
    return this.arena.keyed.get(`${this.prefix}/=${name}`, n);
  }
}

/** The arena behind ScratchBuffers: one per stack of blocks. */
export class SharedScratch {
  readonly arena = new ScratchArena();
  /** each module's buffers of the other kind (training or inference), kept for a switch back */
  private readonly other = new Map<Module, Buffers>();

  /**
   * Points every module of the block at the arena (idempotent; picks up modules swapped in
   * since): with ScratchBuffers, or InferenceBuffers when `inference`. A module switching
   * between the two gets its earlier buffers of the kind back.
   */
  attach(block: Module, inference = false): void {
    const kind = inference ? InferenceBuffers : ScratchBuffers;
    const ours = (b: Buffers | undefined, path: string): boolean => b !== undefined && b.constructor === kind && (b as ScratchBuffers).arena === this.arena && (b as ScratchBuffers).prefix === path;
    pointBuffers(block, ours, (path, m) => {
      const b = m.buffers;
      const back = this.other.get(m);
      if (b instanceof ScratchBuffers && b.arena === this.arena && b.prefix === path) this.other.set(m, b);
      return ours(back, path) ? back! : new kind(this.arena, path);
    });
  }

  /** the arena's bytes and those of the buffers kept for a switch back */
  get bytes(): number {
    let n = this.arena.bytes;
    for (const b of this.other.values()) n += b.bytes;
    return n;
  }

  clear(): void {
    this.arena.clear();
    this.other.clear();
  }
}

/**
 * Gives every module of the block (see allModules) the buffers make(path, module) unless
 * current() says it already has them; returns the modules and whether any changed.
 */
function pointBuffers(block: Module, current: (b: Buffers, path: string) => boolean, make: (path: string, m: Module) => Buffers): { modules: [string, Module][]; changed: boolean } {
  const modules = allModules(block);
  let changed = false;
  for (const [path, m] of modules) {
    if (current(m.buffers, path)) continue;
    m.buffers = make(path, m);
    changed = true;
  }
  return { modules, changed };
}

interface BlockState {
  x: Float32Array;
  ctx: unknown;
  rngs: [Rng, RngState][];
}

export class GradientCheckpointing {
  /** when false, forward/backward call the block directly (and blocks get their own buffers back) */
  enabled: boolean;
  /** the shared buffers of every module in the checkpointed blocks */
  readonly arena = new Buffers();
  /** their scratch, by stage (see ScratchArena) */
  readonly slots = new ScratchArena();
  /** the last block output, a copy of dy, and dx, shared by all blocks */
  private readonly io = new Buffers();
  private readonly states = new Map<Module, BlockState>();
  /** the module paths of the block last attached */
  private paths = '';

  constructor(enabled = true) {
    this.enabled = enabled;
  }

  /** Runs block.forward(x, ctx) keeping only a copy of x (and the Rng states); the result is valid until the next forward here. */
  forward<Ctx>(block: CheckpointBlock<Ctx>, x: Float32Array, ctx: Ctx): Float32Array {
    if (!this.enabled) {
      this.detach(block);
      return block.forward(x, ctx);
    }
    this.attach(block);
    let st = this.states.get(block);
    if (!st || st.x.length !== x.length) {
      st = { x: getBackend().memory.alloc(x.length), ctx, rngs: [] };
      this.states.set(block, st);
    }
    copyAll(st.x, x); // before the block runs: x may live in the arena or be the last output
    st.ctx = ctx;
    st.rngs = blockRngs(block).map((r) => [r, r.state()]);
    this.slots.release(); // a block that never releases its stages still takes each slot once per call
    const y = block.forward(st.x, ctx);
    const out = this.io.get('out', y.length);
    copyAll(out, y);
    return out;
  }

  /** Recomputes the block's forward from its saved input, then runs its backward; dx is valid until the next backward here. */
  backward<Ctx>(block: CheckpointBlock<Ctx>, dy: Float32Array): Float32Array | null {
    if (!this.enabled) return block.backward(dy);
    const st = this.states.get(block);
    if (!st) throw new Error('GradientCheckpointing.backward: this block has no saved input (was its forward run through the same GradientCheckpointing?)');
    const dyCopy = this.io.get('dy', dy.length);
    if (dy !== dyCopy) copyAll(dyCopy, dy); // the recompute overwrites the arena, where dy may live
    this.attach(block);
    const now = st.rngs.map(([r]) => r.state());
    for (const [r, s] of st.rngs) r.setState(s);
    this.slots.release();
    block.forward(st.x, st.ctx as Ctx);
    st.rngs.forEach(([r], i) => r.setState(now[i]!));
    this.slots.release();
    const dx = block.backward(dyCopy);
    if (!dx) return null;
    if (dx.length !== st.x.length) throw new ShapeError(`GradientCheckpointing.backward: the block returned dx with ${dx.length} elements, its input had ${st.x.length}`);
    const out = this.io.get('dx', dx.length);
    copyAll(out, dx);
    return out;
  }

  /**
   * Points every module of the block at the shared arena (idempotent; picks up modules
   * swapped in since, e.g. adapters). When the block's module paths differ from the last
   * block's the arena is emptied, so names no module uses any more do not linger; nothing in
   * it outlives one block's forward and backward anyway (block inputs, outputs and gradients
   * live outside it).
   */
  attach(block: Module): void {
    const { modules, changed } = pointBuffers(
      block,
      (b, path) => b instanceof ArenaBuffers && b.arena === this.arena && b.prefix === path,
      (path) => new ArenaBuffers(this.arena, path, this.slots),
    );
    // The blocks of a stack have the same paths: only a new set of paths empties the arena
    // (emptying it for each block attached in turn would throw away one block's arrays per block).
    const paths = modules.map(([p]) => p).join('\n');
    if (changed && paths !== this.paths) this.arena.clear();
    this.paths = paths;
  }

  /** Gives every module of the block its own buffers again (when it was attached here). */
  detach(block: Module): void {
    for (const [, m] of allModules(block)) {
      if (m.buffers instanceof ArenaBuffers && m.buffers.arena === this.arena) m.buffers = new Buffers();
    }
    this.states.delete(block);
  }

  /** Bytes held here: the arena, the shared io arrays and the saved block inputs. */
  get bytes(): number {
    let n = this.arena.bytes + this.slots.bytes + this.io.bytes;
    for (const st of this.states.values()) n += st.x.byteLength;
    return n;
  }

  /** Frees the arena, the shared arrays and the saved inputs. */
  clear(): void {
    this.arena.clear();
    this.slots.clear();
    this.io.clear();
    this.states.clear();
  }
}

/**
 * The block's modules with their paths, and every Rng they hold. Modules: the registered
 * tree, plus modules held in plain fields, maps, arrays or plain objects (a wrapper's
 * `base`, an adapter's dropout), at `path#field…`. Rngs: any found the same way. Each once.
 */
export function walkBlock(root: Module): { modules: [string, Module][]; rngs: Rng[] } {
  const modules: [string, Module][] = [];
  const rngs = new Set<Rng>();
  const seen = new Set<unknown>();
  const addTree = (prefix: string, m: Module): void => {
    const fresh: [string, Module][] = [];
    for (const [path, sub] of m.namedModules(prefix)) {
      if (seen.has(sub)) continue;
      seen.add(sub);
      modules.push([path, sub]);
      fresh.push([path, sub]);
    }
    for (const [path, sub] of fresh) scan(`${path}#`, sub, 0);
  };
  const scan = (path: string, obj: object, depth: number): void => {
    const entries: [string, unknown][] =
      obj instanceof Map ? [...obj.entries()].map(([k, v]) => [String(k), v]) : Array.isArray(obj) ? obj.map((v, i) => [String(i), v]) : Object.entries(obj);
    for (const [k, v] of entries) {
      if (v === null || typeof v !== 'object' || seen.has(v)) continue;
      if (v instanceof Rng) {
        rngs.add(v);
        seen.add(v);
      } else if (v instanceof Module) {
        addTree(`${path}${k}`, v);
      } else if (depth < 3 && !ArrayBuffer.isView(v) && !(v instanceof Buffers) && !(v instanceof Parameter) && !(v instanceof Tensor)) {
        seen.add(v);
        scan(`${path}${k}.`, v, depth + 1);
      }
    }
  };
  addTree('', root);
  return { modules, rngs: [...rngs] };
}

/** The block's modules with their paths, including modules held outside the registered tree (see walkBlock). */
export function allModules(root: Module): [string, Module][] {
  return walkBlock(root).modules;
}

/** Every distinct Rng held by the block's modules (Dropout.rng, an adapter's dropout …). */
function blockRngs(block: Module): Rng[] {
  return walkBlock(block).rngs;
}

/**
 * Bytes of scratch held by the modules below root (each arena counted once) plus any
 * extra holders (e.g. a GradientCheckpointing).
 */
export function retainedBytes(root: Module, ...extra: { bytes: number }[]): number {
  const seen = new Set<Buffers>();
  let n = 0;
  for (const [, m] of allModules(root)) {
    const b = m.buffers;
    if (b instanceof ArenaBuffers) continue; // counted through extra (the checkpointer's arena)
    if (!seen.has(b)) {
      seen.add(b);
      n += b.bytes;
    }
  }
  for (const e of extra) n += e.bytes;
  return n;
}

/** dst[0, n) = src (n = src.length): a backend copy, since handles may live on a device (docs/ARCHITECTURE.md §Backend memory) */
function copyAll(dst: Float32Array, src: Float32Array): void {
  getBackend().copy2d(dst, src, { rows: 1, cols: src.length });
}
