// A model and its tokenizer from URLs or from files the user picked (docs/ARCHITECTURE.md
// §Browser): config.json, model.safetensors or model.safetensors.index.json with its shards,
// tokenizer.json, and the optional tokenizer_config.json, special_tokens_map.json and
// generation_config.json. Web APIs only (fetch, Blob), so it runs in a page, a worker or Node.
import { Problems } from '../io/errors.js';
import { MemoryWeights, parseShardIndexText } from '../io/memory-weights.js';
import { parseJsonObject, type JsonObject } from '../io/json.js';
import { Tokenizer, type TokenizerFiles } from '../io/tokenizer.js';
import type { DecoderLM } from '../models/decoder.js';
import { modelFromWeights } from '../models/load.js';

/** Where a model's files come from. */
export type ModelSource =
  /** files under a base URL (`https://host/models/smol/`); `names`, when given, lists the files that exist (no probing) */
  | { url: string; names?: readonly string[] }
  /** files the user picked (an <input type=file multiple> list, a folder's files), by file name */
  | { files: readonly (Blob & { name: string })[] };

export interface LoadedModel {
  model: DecoderLM;
  tokenizer: Tokenizer;
  config: JsonObject;
  /** the source's name (its URL, or the picked weights file) */
  where: string;
  /** bytes read */
  bytes: number;
}

const OPTIONAL_JSON = ['tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'] as const;

/** Reads one file of a source as bytes: null when it does not exist. */
type Reader = (name: string) => Promise<Uint8Array | null>;

function readerOf(src: ModelSource): { read: Reader; where: string } {
  if ('files' in src) {
    const byName = new Map<string, Blob>();
    for (const f of src.files) byName.set(f.name.replace(/^.*[\\/]/, ''), f);
    return {
      where: `the picked files (${[...byName.keys()].join(', ') || 'none'})`,
      read: async (name) => {
        const f = byName.get(name);
        return f ? new Uint8Array(await f.arrayBuffer()) : null;
      },
    };
  }
  const base = src.url.endsWith('/') ? src.url : `${src.url}/`;
  const names = src.names ? new Set(src.names) : null;
  return {
    where: base,
    read: async (name) => {
      if (names && !names.has(name)) return null;
      const url = new URL(name, new URL(base, globalThis.location?.href)).href;
      const r = await fetch(url);
      if (r.status === 404) return null;
      if (!r.ok) throw new Error(`model files: GET ${url} answered ${r.status} ${r.statusText}`);
      return new Uint8Array(await r.arrayBuffer());
    },
  };
}

const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** Loads a causal LM and its tokenizer from a source; every missing required file is named. */
export async function loadModelFiles(src: ModelSource): Promise<LoadedModel> {
  const { read, where } = readerOf(src);
  let bytes = 0;
  const get = async (name: string): Promise<Uint8Array | null> => {
    const b = await read(name);
    if (b) bytes += b.length;
    return b;
  };
  const [configBytes, tokBytes, ...optional] = await Promise.all([get('config.json'), get('tokenizer.json'), ...OPTIONAL_JSON.map(get)]);
  const missing = [!configBytes && 'config.json', !tokBytes && 'tokenizer.json'].filter((x): x is string => !!x);

  // the weights: one file, else an index and its shards
  const files = new Map<string, Uint8Array>();
  let weightMap: Map<string, string> | undefined;
  let weightsName = 'model.safetensors';
  const single = await get('model.safetensors');
  if (single) files.set('model.safetensors', single);
  else {
    const index = await get('model.safetensors.index.json');
    if (!index) missing.push('model.safetensors (or model.safetensors.index.json with its shards)');
    else {
      weightsName = 'model.safetensors.index.json';
      weightMap = parseShardIndexText(text(index), `${where}model.safetensors.index.json`);
      const shards = [...new Set(weightMap.values())].sort();
      const got = await Promise.all(shards.map(get));
      shards.forEach((s, i) => (got[i] ? files.set(s, got[i]) : missing.push(s)));
    }
  }
  if (missing.length) throw new Error(`model files: ${where} lacks ${missing.join(', ')}`);

  const p = new Problems('model files', where);
  const config = parseJsonObject(text(configBytes!), 'config.json', p);
  const tokenizerJson = parseJsonObject(text(tokBytes!), 'tokenizer.json', p);
  const [tc, stm, gen] = optional.map((b, i) => (b ? parseJsonObject(text(b), OPTIONAL_JSON[i]!, p) : undefined));
  p.throwIfAny();
  const tf: TokenizerFiles = { source: where, tokenizerJson: tokenizerJson! };
  if (tc) tf.tokenizerConfig = tc;
  if (stm) tf.specialTokensMap = stm;
  if (gen) tf.generationConfig = gen;
  const tokenizer = new Tokenizer(tf);
  const weights = new MemoryWeights(files, weightMap, `${where}${weightsName}`);
  const model = modelFromWeights(config!, weights, { config: `${where}config.json`, weights: `${where}${weightsName}` });
  weights.close();
  return { model, tokenizer, config: config!, where, bytes };
}
