// Model folders on disk (Node): loadModel reads config.json and the weights of a Hugging Face
// folder and builds the model (load.ts); saveModel writes one, each file atomically.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { getBackend } from '../backend/index.js';
import { writeFileAtomic } from '../io/atomic.node.js';
import { GgufFile, isGgufPath } from '../io/gguf.node.js';
import { ggufConfig, ggufTensorSource } from './gguf.js';
import { loadModelFolder } from '../io/model-folder.node.js';
import { writeShardedSafetensors } from '../io/sharded.node.js';
import type { Tensor } from '../tensor/tensor.js';
import type { JsonObject } from './config.js';
import type { DecoderLM } from './decoder.js';
import { modelFolderContents, modelFromWeights, type LoadModelOptions, type SaveModelOptions } from './load.js';
import { getModelFamily } from './registry.js';

/**
 * Loads a Hugging Face model folder: config.json (validated by the family of its
 * model_type) and model.safetensors (or shards). Every missing tensor, wrong shape or
 * unexpected key is reported together. The model is frozen (no parameter requires grad)
 * and in eval mode.
 */
export function loadModel(dir: string, opts: LoadModelOptions = {}): DecoderLM {
  if (isGgufPath(dir)) return loadGgufModel(dir, opts);
  const folder = loadModelFolder(dir);
  try {
    const wfile = path.relative(dir, folder.weightFiles.path) || folder.weightFiles.path;
    const where = { config: path.join(dir, 'config.json'), weights: `model folder ${dir} (${wfile}, model_type ${String(folder.config['model_type'])})` };
    return modelFromWeights(folder.config, folder.weights, where, opts);
  } finally {
    folder.close();
  }
}

/**
 * Writes a Hugging Face folder: config.json and model.safetensors, or shards and their index
 * past maxShardBytes (each file atomically).
 * Tied weights are written once, under the embedding's key, as transformers does.
 */
export async function saveModel(model: DecoderLM, dir: string, opts: SaveModelOptions = {}): Promise<void> {
  const architecture = getModelFamily(model.info.modelType).architecture;
  await writeModelFolder(dir, model.stateDict(), model.config, architecture, opts);
}

/**
 * Writes a Hugging Face folder from a state dict: the tensors (cast to opts.dtype when given)
 * as model.safetensors or shards past maxShardBytes, and config.json with torch_dtype and,
 * when the config has none, `architectures` (each file atomically).
 */
export async function writeModelFolder(dir: string, state: Map<string, Tensor>, config: Readonly<JsonObject>, architecture: string | null, opts: SaveModelOptions = {}): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const { tensors, config: cfg } = modelFolderContents(state, config, architecture, opts.dtype ? { dtype: opts.dtype } : {});
  await writeShardedSafetensors(dir, tensors, { metadata: { format: 'pt' }, ...(opts.maxShardBytes !== undefined ? { maxShardBytes: opts.maxShardBytes } : {}) });
  await writeFileAtomic(path.join(dir, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
}

/**
 * Loads a GGUF model file (llama.cpp's llama and qwen2 architectures): the config from its
 * metadata, the weights under Hugging Face keys (models/gguf.ts). docs/ARCHITECTURE.md §GGUF.
 */
export function loadGgufModel(file: string, opts: LoadModelOptions = {}): DecoderLM {
  const g = GgufFile.open(file);
  try {
    const config = ggufConfig(g);
    const where = { config: `GGUF file ${file} (metadata)`, weights: `GGUF file ${file} (model_type ${String(config['model_type'])})` };
    // quantized matrices stay blocks where the backend's kernels read them (QLoRA-style training,
    // docs/ARCHITECTURE.md §Quantized weights); dtype f32 (or a backend without) dequantizes
    const keep = opts.dtype === 'f32' ? [] : (getBackend().quantTypes ?? []);
    return modelFromWeights(config, ggufTensorSource(g, config, keep), where, opts);
  } finally {
    g.close();
  }
}
