// Weights held in memory (bytes a browser fetched or the user picked): one safetensors file,
// or the shards a `model.safetensors.index.json` names, as a TensorSource for modelFromWeights.
// The Node twins read files lazily (safetensors.node.ts, sharded.node.ts); here every shard is
// parsed up front. See docs/ARCHITECTURE.md §Platforms and entry points.
import type { Tensor } from '../tensor/index.js';
import { FormatError, Problems, describe } from './errors.js';
import { deserializeSafetensors, safetensorsDTypeOf, type LoadedSafetensors, type RawTensor, type TensorInfo, type TensorSource } from './safetensors.js';

/** Tensor name → shard file name, parsed from the text of a model.safetensors.index.json. */
export function parseShardIndexText(text: string, file: string): Map<string, string> {
  const p = new Problems('shard index', file);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    p.add(`not valid JSON (${(err as Error).message})`);
    p.throwIfAny();
  }
  const wm = typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>)['weight_map'] : undefined;
  const out = new Map<string, string>();
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
    p.add(`"weight_map" must be an object {tensor name: shard file}, got ${wm === undefined ? 'nothing' : describe(wm)}`);
  } else {
    for (const [name, shard] of Object.entries(wm)) {
      // a shard is a file next to the index: no folders, so a URL or a picked file list can hold it
      if (typeof shard !== 'string' || shard === '' || /[\\/]|^\.\.?$/.test(shard)) p.add(`weight_map[${JSON.stringify(name)}] must be a shard file name next to the index, got ${describe(shard)}`);
      else out.set(name, shard);
    }
    if (out.size === 0 && Object.keys(wm).length === 0) p.add('"weight_map" is empty (expected at least one tensor)');
  }
  p.throwIfAny();
  return out;
}

/** Float tensors parsed from safetensors bytes, by name, with the file each came from. */
export class MemoryWeights implements TensorSource {
  private readonly entries = new Map<string, { tensor: Tensor; file: string }>();

  /**
   * `files`: file name → bytes. Without `weightMap` it must hold one safetensors file; with
   * it (from parseShardIndexText), every shard the map names, and each shard must hold
   * exactly the tensors the map assigns it.
   */
  constructor(files: ReadonlyMap<string, Uint8Array>, weightMap?: ReadonlyMap<string, string>, indexFile = 'model.safetensors.index.json') {
    if (!weightMap) {
      if (files.size !== 1) throw new FormatError('weights', [...files.keys()].join(', ') || '(no file)', [`expected one safetensors file, got ${files.size}`]);
      const [file, bytes] = [...files][0]!;
      this.add(deserializeSafetensors(bytes, file), file);
      return;
    }
    const p = new Problems('sharded weights', indexFile);
    const byShard = new Map<string, string[]>();
    for (const [name, shard] of weightMap) byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
    for (const [shard, names] of byShard) {
      const bytes = files.get(shard);
      if (!bytes) {
        p.add(`shard ${shard} (${names.length} tensor(s), e.g. ${names[0]}) is missing`);
        continue;
      }
      const loaded = deserializeSafetensors(bytes, shard);
      for (const n of names) if (!loaded.tensors.has(n)) p.add(`${n}: the index places it in ${shard}, which has no float tensor of that name`);
      for (const n of loaded.tensors.keys()) if (weightMap.get(n) !== shard) p.add(`${shard} holds ${n}, which the index ${weightMap.has(n) ? `places in ${weightMap.get(n)}` : 'does not list'}`);
      this.add(loaded, shard);
    }
    p.throwIfAny();
  }

  private add(loaded: LoadedSafetensors, file: string): void {
    for (const [name, tensor] of loaded.tensors) this.entries.set(name, { tensor, file });
  }

  names(): string[] {
    return [...this.entries.keys()].sort();
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  private get(name: string): { tensor: Tensor; file: string } {
    const e = this.entries.get(name);
    if (!e) throw new FormatError('weights', '(in memory)', [`no tensor named ${name}`]);
    return e;
  }

  info(name: string): TensorInfo {
    const { tensor, file } = this.get(name);
    return { name, dtype: safetensorsDTypeOf(tensor.floatDtype), shape: tensor.shape, file, offset: 0, byteLength: tensor.data.byteLength };
  }

  tensor(name: string): Tensor {
    return this.get(name).tensor;
  }

  raw(name: string): RawTensor {
    const t = this.get(name).tensor;
    return { dtype: safetensorsDTypeOf(t.floatDtype), shape: t.shape, data: t.floatData };
  }

  *tensors(): IterableIterator<[string, Tensor]> {
    for (const [name, e] of this.entries) yield [name, e.tensor];
  }

  close(): void {
    this.entries.clear();
  }
}
