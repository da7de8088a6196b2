// Classifier folders on disk (Node): loadClassifier reads config.json and the weights and
// builds the model (encoder-load.ts); saveClassifier writes a folder, each file atomically.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Problems } from '../io/errors.js';
import { readJsonObject } from '../io/json.node.js';
import { openWeights } from '../io/model-folder.node.js';
import type { DType } from '../tensor/tensor.js';
import type { EncoderClassifier } from './encoder.js';
import { classifierFromWeights, type LoadClassifierOptions } from './encoder-load.js';
import { writeModelFolder } from './load.node.js';
import { ENCODER_FAMILIES } from './registry.js';

/**
 * Loads a classification model folder (config.json with model_type bert / roberta / vit,
 * model.safetensors or shards). Every missing tensor, wrong shape or unexpected key is
 * reported together. A checkpoint without its task head (BertModel, ViTModel) gets a new one,
 * with a warning. The model is frozen and in eval mode.
 */
export function loadClassifier(dir: string, opts: LoadClassifierOptions = {}): EncoderClassifier {
  const configFile = path.join(dir, 'config.json');
  const problems = new Problems('model folder', dir);
  const config = readJsonObject(configFile, problems, true);
  problems.throwIfAny();
  const src = openWeights(dir);
  try {
    const wfile = fs.existsSync(path.join(dir, 'model.safetensors')) ? 'model.safetensors' : 'sharded weights';
    const where = { config: configFile, weights: `model folder ${dir} (${wfile}, model_type ${String(config!['model_type'])})`, folder: dir };
    return classifierFromWeights(config!, src, where, opts);
  } finally {
    src.close();
  }
}

/** Writes config.json (with id2label / label2id and architectures) and model.safetensors. */
export async function saveClassifier(model: EncoderClassifier, dir: string, opts: { dtype?: DType } = {}): Promise<void> {
  const fam = ENCODER_FAMILIES.get(model.info.modelType);
  await writeModelFolder(dir, model.stateDict(), model.config, fam ? fam.architecture : null, opts);
}
