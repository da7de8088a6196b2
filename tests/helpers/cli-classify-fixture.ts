// Tiny classifier folders and data for the classification CLI tests: a BERT-style model with a
// WordPiece tokenizer and an easy text task (is the sentence about colours or animals?), and a
// ViT with synthetic shape images (a folder per class).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createClassifier } from '../../src/models/encoder-load.js';
import { saveClassifier } from '../../src/models/encoder-load.node.js';
import { Rng } from '../../src/tensor/rng.js';
import { SHAPES, encodePng, shapeImage, writeWordPieceTokenizer } from '../../src/tasks/synthetic.js';

export const COLORS = ['red', 'blue', 'green', 'yellow', 'black', 'white'];
export const ANIMALS = ['cat', 'dog', 'bird', 'fish', 'horse', 'cow'];
const FILLERS = ['the', 'a', 'big', 'small', 'old', 'very', 'is', 'here'];

/**
 * A tiny BERT folder (random weights, seeded; config labels LABEL_0, LABEL_1) with its
 * tokenizer. typeVocabSize 1: a model without token types (no sentence pairs).
 */
export async function writeTinyBert(dir: string, opts: { typeVocabSize?: number; seed?: number } = {}): Promise<void> {
  const vocabSize = writeWordPieceTokenizer(dir, [...COLORS, ...ANIMALS, ...FILLERS]);
  const config = {
    model_type: 'bert', vocab_size: vocabSize, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64,
    max_position_embeddings: 32, type_vocab_size: opts.typeVocabSize ?? 2, initializer_range: 0.05, layer_norm_eps: 1e-12, hidden_act: 'gelu', pad_token_id: 0,
  };
  await saveClassifier(createClassifier(config, { seed: opts.seed ?? 11 }), dir);
}

/** A sentence of fillers with one colour ("color") or one animal ("animal") somewhere in it. */
export function topicExample(rng: Rng): { text: string; label: string } {
  const animal = rng.nextFloat() < 0.5;
  const key = animal ? ANIMALS[rng.nextInt(ANIMALS.length)]! : COLORS[rng.nextInt(COLORS.length)]!;
  const n = 2 + rng.nextInt(3);
  const words = Array.from({ length: n }, () => FILLERS[rng.nextInt(FILLERS.length)]!);
  words.splice(rng.nextInt(n + 1), 0, key);
  return { text: words.join(' '), label: animal ? 'animal' : 'color' };
}

export function writeJsonl(file: string, rows: readonly object[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

/** train.jsonl and test.jsonl of the colour/animal task. */
export function writeTopicData(dir: string, nTrain: number, nTest: number, seed = 5): { train: string; test: string; testRows: { text: string; label: string }[] } {
  const rng = new Rng(seed);
  const trainRows = Array.from({ length: nTrain }, () => topicExample(rng));
  const testRows = Array.from({ length: nTest }, () => topicExample(rng));
  const train = path.join(dir, 'topic-train.jsonl');
  const test = path.join(dir, 'topic-test.jsonl');
  writeJsonl(train, trainRows);
  writeJsonl(test, testRows);
  return { train, test, testRows };
}

/** A tiny ViT folder (16×16 images, 4×4 patches) with a preprocessor_config.json; labels circle, square, triangle. */
export async function writeTinyVit(dir: string, seed = 3): Promise<void> {
  const config = {
    model_type: 'vit', hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64, image_size: 16, patch_size: 4,
    num_channels: 3, qkv_bias: true, initializer_range: 0.2, layer_norm_eps: 1e-12, hidden_act: 'gelu',
    id2label: { '0': 'circle', '1': 'square', '2': 'triangle' }, label2id: { circle: 0, square: 1, triangle: 2 },
  };
  await saveClassifier(createClassifier(config, { seed }), dir);
  fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify({ do_normalize: true, do_rescale: true, do_resize: true, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5], resample: 2, rescale_factor: 1 / 255, size: { height: 16, width: 16 } }));
}

/** A folder per shape with n PNGs each (24×24, resized to 16×16 by the preprocessor). */
export function writeShapes(root: string, n: number, seed = 9): void {
  const rng = new Rng(seed);
  const S = 24;
  for (const shape of SHAPES) {
    fs.mkdirSync(path.join(root, shape), { recursive: true });
    for (let i = 0; i < n; i++) fs.writeFileSync(path.join(root, shape, `${i}.png`), encodePng(shapeImage(shape, S, rng), S, S));
  }
}
