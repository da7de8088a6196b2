// Loading what the commands work on: a model folder with its tokenizer, and adapters on it.
// Errors are rewrapped to name the folder and the first problem.
import { Tokenizer } from '../io/tokenizer.js';
import { loadPeftModel } from '../lora/index.node.js';
import { type PeftModel } from '../lora/index.js';
import type { DecoderLM } from '../models/decoder.js';
import { loadModel } from '../models/load.node.js';
import { UsageError, oneLine, requireAdapterFolder, requireModelFolder } from './common.js';
import { loadTokenizer } from '../io/tokenizer.node.js';
import { loadAdapter } from '../lora/files.node.js';

export interface LoadedModel {
  dir: string;
  model: DecoderLM;
  tokenizer: Tokenizer;
}

/** A model folder (dtype kept as stored) and its tokenizer. */
/** Loads a model folder (weights in the checkpoint's dtype unless `f32` asks to widen them) and its tokenizer. */
export function openModel(dir: string, opts: { tokenizer?: boolean; f32?: boolean } = {}): LoadedModel {
  requireModelFolder(dir);
  const model = loadModel(dir, { dtype: opts.f32 ? 'f32' : 'keep' });
  const tokenizer = opts.tokenizer === false ? (null as unknown as Tokenizer) : loadTokenizer(dir);
  return { dir, model, tokenizer };
}

export interface AdapterSpec {
  name: string;
  dir: string;
}

/** `--adapter DIR` (named "default") or `--adapter name=DIR`, repeatable. */
export function parseAdapterSpecs(values: readonly string[] | undefined): AdapterSpec[] {
  const specs = (values ?? []).map((v) => {
    const m = /^([A-Za-z0-9_-]+)=(.+)$/.exec(v);
    return m ? { name: m[1]!, dir: m[2]! } : { name: 'default', dir: v };
  });
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.name)) {
      throw new UsageError(s.name === 'default' ? 'several --adapter folders without names: give each a name (--adapter name=DIR)' : `two adapters are named "${s.name}"`);
    }
    seen.add(s.name);
  }
  return specs;
}

/**
 * Loads the adapters onto the model (frozen, inference mode) and activates `active` (default:
 * the first). An adapter that does not fit names the first mismatching tensor and both shapes.
 */
export function attachAdapters(loaded: LoadedModel, specs: readonly AdapterSpec[], active?: readonly string[], opts: { trainable?: boolean } = {}): PeftModel<DecoderLM> | null {
  if (specs.length === 0) {
    if (active && active.length) throw new UsageError(`--adapter-name ${active.join(',')} needs --adapter`);
    return null;
  }
  for (const s of specs) requireAdapterFolder(s.dir);
  let peft: PeftModel<DecoderLM> | null = null;
  for (const s of specs) {
    try {
      if (!peft) peft = loadPeftModel(loaded.model, s.dir, { adapterName: s.name, isTrainable: opts.trainable ?? false });
      else loadAdapter(peft, s.dir, s.name, { isTrainable: opts.trainable ?? false });
    } catch (e) {
      const msg = oneLine((e as Error).message, 1).replace(/^loadAdapter [^:]*: /, '');
      const fit = /has shape|missing tensor|has no module|is unexpected|not a Linear/.test(msg);
      throw new Error(fit ? `adapter ${s.dir} does not fit model ${loaded.dir}: ${msg}` : `adapter ${s.dir}: ${msg}`);
    }
  }
  const names = active && active.length ? [...active] : [specs[0]!.name];
  const unknown = names.filter((n) => !specs.some((s) => s.name === n));
  if (unknown.length) throw new UsageError(`--adapter-name: no adapter named ${unknown.join(', ')} (loaded: ${specs.map((s) => s.name).join(', ')})`);
  peft!.setAdapter(names);
  return peft;
}
