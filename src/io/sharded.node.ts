// Sharded safetensors checkpoints: `model.safetensors.index.json` maps every tensor name to the
// shard file holding it: {"metadata": {"total_size": N}, "weight_map": {name: "model-00001-of-00002.safetensors"}}.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Tensor } from '../tensor/index.js';
import { writeFileAtomic } from './atomic.node.js';
import { FormatError, Problems, describe } from './errors.js';
import { SafetensorsFile } from './safetensors.node.js';
import { planSafetensors, tensorByteLength, tensorDTypeOf, tensorEntries } from './safetensors.js';
import type { RawTensor, TensorInfo, TensorMap, TensorSource, TensorLike } from './safetensors.js';

export const SINGLE_WEIGHTS_FILE = 'model.safetensors';
export const SHARD_INDEX_FILE = 'model.safetensors.index.json';

export interface ShardIndex {
  /** The index file's path. */
  readonly file: string;
  readonly metadata: Readonly<Record<string, unknown>>;
  /** Tensor name → shard file name (relative to the index's folder). */
  readonly weightMap: ReadonlyMap<string, string>;
}

function isInside(rel: string): boolean {
  const norm = path.normalize(rel);
  return rel !== '' && !path.isAbsolute(rel) && norm !== '..' && !norm.startsWith(`..${path.sep}`);
}

/** Reads and validates an index file (every problem reported together). */
export function readShardIndex(file: string): ShardIndex {
  const p = new Problems('shard index', file);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    p.add(`cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    p.throwIfAny();
    text = '';
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    p.add(`not valid JSON (${(err as Error).message})`);
    p.throwIfAny();
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    p.add(`expected a JSON object {metadata, weight_map}, got ${describe(json)}`);
    p.throwIfAny();
  }
  const obj = json as Record<string, unknown>;
  const metadata = obj['metadata'] ?? {};
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) p.add(`"metadata" must be an object, got ${describe(metadata)}`);
  const wm = obj['weight_map'];
  const weightMap = new Map<string, string>();
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
    p.add(`"weight_map" must be an object {tensor name: shard file}, got ${wm === undefined ? 'nothing' : describe(wm)}`);
  } else {
    for (const [name, shard] of Object.entries(wm)) {
      if (typeof shard !== 'string' || !isInside(shard)) p.add(`weight_map[${JSON.stringify(name)}] must be a shard file name inside the folder, got ${describe(shard)}`);
      else weightMap.set(name, shard);
    }
    if (Object.keys(wm).length === 0) p.add('"weight_map" is empty (expected at least one tensor)');
  }
  p.throwIfAny();
  return { file, metadata: metadata as Record<string, unknown>, weightMap };
}

/** A sharded checkpoint: every shard opened and checked; tensors read lazily by name. */
export class ShardedSafetensors implements TensorSource {
  readonly index: ShardIndex;
  /** Shard file name → opened file. */
  readonly shards: ReadonlyMap<string, SafetensorsFile>;

  private constructor(index: ShardIndex, shards: Map<string, SafetensorsFile>) {
    this.index = index;
    this.shards = shards;
  }

  /**
   * Opens the index and every shard it names, and checks that each tensor in the weight map is in
   * its shard. All problems (missing shards, bad shard headers, missing tensors) are thrown together.
   */
  static open(indexFile: string): ShardedSafetensors {
    const index = readShardIndex(indexFile);
    const dir = path.dirname(indexFile);
    const p = new Problems('sharded checkpoint', indexFile);
    const byShard = new Map<string, string[]>();
    for (const [name, shard] of index.weightMap) {
      const list = byShard.get(shard);
      if (list) list.push(name);
      else byShard.set(shard, [name]);
    }
    const shards = new Map<string, SafetensorsFile>();
    for (const [shard, names] of byShard) {
      const file = path.join(dir, shard);
      if (!fs.existsSync(file)) {
        p.add(`shard ${shard} does not exist (weight_map lists ${names.length} tensors in it, e.g. ${JSON.stringify(names[0])})`);
        continue;
      }
      try {
        shards.set(shard, SafetensorsFile.open(file));
      } catch (err) {
        if (err instanceof FormatError) for (const q of err.problems) p.add(`shard ${shard}: ${q}`);
        else p.add(`shard ${shard}: ${(err as Error).message}`);
        continue;
      }
      const opened = shards.get(shard)!;
      for (const name of names) {
        if (!opened.has(name)) p.add(`tensor ${JSON.stringify(name)}: weight_map says it is in shard ${shard}, but that shard has no such tensor`);
      }
    }
    if (!p.empty) {
      for (const s of shards.values()) s.close();
      p.throwIfAny();
    }
    return new ShardedSafetensors(index, shards);
  }

  private shardOf(name: string): SafetensorsFile {
    const shard = this.index.weightMap.get(name);
    if (shard === undefined) {
      throw new FormatError('sharded checkpoint', this.index.file, [`no tensor named ${JSON.stringify(name)} in weight_map (${this.index.weightMap.size} tensors)`]);
    }
    return this.shards.get(shard)!;
  }

  names(): string[] {
    return [...this.index.weightMap.keys()].sort();
  }

  has(name: string): boolean {
    return this.index.weightMap.has(name);
  }

  info(name: string): TensorInfo {
    return this.shardOf(name).info(name);
  }

  tensor(name: string): Tensor {
    return this.shardOf(name).tensor(name);
  }

  raw(name: string): RawTensor {
    return this.shardOf(name).raw(name);
  }

  /** Every listed float tensor, shard by shard in file order (sequential reads); other dtypes are skipped. */
  *tensors(): IterableIterator<[string, Tensor]> {
    for (const [shard, file] of this.shards) {
      for (const name of file.fileOrder()) {
        if (this.index.weightMap.get(name) === shard && tensorDTypeOf(file.info(name).dtype) !== undefined) yield [name, file.tensor(name)];
      }
    }
  }

  close(): void {
    for (const s of this.shards.values()) s.close();
  }
}

export interface WriteShardedOptions {
  /** Largest shard in bytes of tensor data (default 5 GB, as Hugging Face saves). A larger tensor gets a shard of its own. */
  maxShardBytes?: number;
  /** `__metadata__` of every shard (e.g. {format: "pt"}). */
  metadata?: Readonly<Record<string, string>>;
  /** File name stem (default "model": model.safetensors, model-00001-of-00002.safetensors). */
  stem?: string;
}

export interface WrittenWeights {
  /** Shard (or single) file names, in order. */
  files: string[];
  /** The index file name, when sharded. */
  index?: string;
}

/** Splits tensors, in the given order, into groups of at most maxShardBytes (a larger tensor alone). */
export function planShards(tensors: TensorMap, maxShardBytes: number): [string, TensorLike][][] {
  const groups: [string, TensorLike][][] = [];
  let current: [string, TensorLike][] = [];
  let size = 0;
  for (const entry of tensorEntries(tensors)) {
    const n = tensorByteLength(entry[1]);
    if (current.length > 0 && size + n > maxShardBytes) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(entry);
    size += n;
  }
  if (current.length > 0 || groups.length === 0) groups.push(current);
  return groups;
}

/**
 * Writes weights into `dir` as one `model.safetensors`, or as shards plus
 * `model.safetensors.index.json` when they exceed maxShardBytes. Each file is written atomically;
 * the index is written after every shard, and files of an older save that the new one does not use
 * (a stale single file, index or shards) are removed last, so a reader never sees a mix.
 */
export async function writeShardedSafetensors(dir: string, tensors: TensorMap, options: WriteShardedOptions = {}): Promise<WrittenWeights> {
  const max = options.maxShardBytes ?? 5_000_000_000;
  if (!(max > 0)) throw new Error(`writeShardedSafetensors ${dir}: maxShardBytes must be positive, got ${max}`);
  const stem = options.stem ?? 'model';
  const single = `${stem}.safetensors`;
  const indexName = `${stem}.safetensors.index.json`;
  const groups = planShards(tensors, max);
  const meta = options.metadata !== undefined ? { metadata: options.metadata } : {};
  // Validate every shard before writing any.
  const plans = groups.map((g, i) => planSafetensors(new Map(g), meta, path.join(dir, `shard ${i + 1}`)));
  await fsp.mkdir(dir, { recursive: true });
  const written: WrittenWeights = { files: [] };
  if (groups.length === 1) {
    await writeFileAtomic(path.join(dir, single), [plans[0]!.header, ...plans[0]!.chunks]);
    written.files.push(single);
  } else {
    const total = String(groups.length).padStart(5, '0');
    const weightMap: Record<string, string> = {};
    let totalSize = 0;
    for (let i = 0; i < groups.length; i++) {
      const name = `${stem}-${String(i + 1).padStart(5, '0')}-of-${total}.safetensors`;
      await writeFileAtomic(path.join(dir, name), [plans[i]!.header, ...plans[i]!.chunks]);
      written.files.push(name);
      for (const [t, v] of groups[i]!) {
        weightMap[t] = name;
        totalSize += tensorByteLength(v);
      }
    }
    const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]!]));
    await writeFileAtomic(path.join(dir, indexName), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: sorted }, null, 2) + '\n');
    written.index = indexName;
  }
  const keep = new Set([...written.files, ...(written.index ? [written.index] : [])]);
  const shardPattern = new RegExp(`^${stem.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-\\d{5}-of-\\d{5}\\.safetensors$`);
  for (const f of await fsp.readdir(dir)) {
    if (keep.has(f)) continue;
    if (f === single || f === indexName || shardPattern.test(f)) await fsp.rm(path.join(dir, f), { force: true });
  }
  return written;
}
