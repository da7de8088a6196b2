// Adapter folders on disk (Node): saveAdapter writes PEFT's files (each atomically),
// loadAdapter and loadPeftModel read PEFT or mlx-lm folders; files.ts parses and checks them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../io/atomic.node.js';
import type { Module } from '../nn/module.js';
import type { LoraConfig } from './config.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, MLX_ADAPTER_WEIGHTS_FILE, adapterFiles, loadAdapterFiles, type AdapterSource, type LoadAdapterOptions, type SaveAdapterOptions } from './files.js';
import { LoraLinear } from './lora-linear.js';
import { PeftModel, type PeftModelOptions } from './peft-model.js';

/** Writes PEFT adapter folders (each file atomically). Returns the folders written. */
export function saveAdapter(peft: PeftModel, dir: string, opts: SaveAdapterOptions = {}): string[] {
  const names = opts.adapterNames ?? peft.adapterNames;
  if (names.length === 0) throw new Error('saveAdapter: the model has no adapters');
  const written: string[] = [];
  for (const name of names) {
    const out = name === 'default' ? dir : path.join(dir, name);
    fs.mkdirSync(out, { recursive: true });
    for (const [file, data] of adapterFiles(peft, name, opts)) writeFileAtomicSync(path.join(out, file), data);
    written.push(out);
  }
  return written;
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`loadAdapter: cannot read ${file}: ${(e as Error).message}`);
  }
}

/** Reads an adapter folder's files (PEFT or mlx-lm). */
export function readAdapterFolder(dir: string): AdapterSource {
  const configFile = path.join(dir, ADAPTER_CONFIG_FILE);
  for (const [format, weightsFile] of [['peft', path.join(dir, ADAPTER_WEIGHTS_FILE)], ['mlx', path.join(dir, MLX_ADAPTER_WEIGHTS_FILE)]] as const) {
    if (fs.existsSync(weightsFile)) return { dir, format, configFile, configText: readText(configFile), weightsFile, weights: fs.readFileSync(weightsFile) };
  }
  if (fs.existsSync(path.join(dir, 'adapter_model.bin'))) throw new Error(`loadAdapter ${dir}: adapter_model.bin (PyTorch pickle) is not supported; save the adapter with safetensors (PEFT's default)`);
  throw new Error(`loadAdapter ${dir}: no ${ADAPTER_WEIGHTS_FILE} (PEFT) or ${MLX_ADAPTER_WEIGHTS_FILE} (mlx-lm) in the folder`);
}

/**
 * Loads an adapter folder (PEFT or mlx-lm) as adapter `name` of `peft` (not activated).
 * Every key and shape is checked first; all problems are thrown together.
 */
export function loadAdapter(peft: PeftModel, dir: string, name: string, opts: LoadAdapterOptions = {}): LoraConfig {
  return loadAdapterFiles(peft, readAdapterFolder(dir), name, opts);
}

/**
 * PeftModel.from_pretrained: freezes `model`, loads the adapter folder as `adapterName`
 * and activates it.
 */
export function loadPeftModel<M extends Module>(model: M, dir: string, opts: LoadAdapterOptions & PeftModelOptions & { adapterName?: string } = {}): PeftModel<M> {
  if (model.namedModules().some(([, m]) => m instanceof LoraLinear)) throw new Error('loadPeftModel: the model has LoRA layers already; use PeftModel.loadAdapter');
  const peftOpts: PeftModelOptions = {};
  if (opts.seed !== undefined) peftOpts.seed = opts.seed;
  if (opts.modelType !== undefined) peftOpts.modelType = opts.modelType;
  const peft = new PeftModel(model, peftOpts);
  model.requiresGrad(false);
  const name = opts.adapterName ?? 'default';
  loadAdapter(peft, dir, name, opts);
  peft.setAdapter(name);
  return peft;
}
