// RoBERTa for sequence classification (transformers' RobertaForSequenceClassification): BERT's
// encoder under the prefix `roberta`, with positions counted from padding_idx
// (position = cumsum(ids ≠ pad)·(ids ≠ pad) + pad, so max_position_embeddings is 514 for 512
// tokens), usually type_vocab_size 1, and a head on the first token <s>:
//   classifier.dense.{weight,bias}     [C, C] → tanh
//   classifier.out_proj.{weight,bias}  [L, C]
// There is no pooler: a RobertaModel checkpoint's `pooler.*` keys are dropped.
// The module tree and forward are BertForSequenceClassification's (src/models/bert.ts).
import { BertForSequenceClassification, parseBertConfig, sanitizeBertKey, type BertConfig } from './bert.js';
import type { JsonObject } from './config.js';
import type { EncoderFamily } from './encoder.js';

export type RobertaConfig = BertConfig;

/** Reads a roberta config.json object (model_type "roberta"). */
export function parseRobertaConfig(json: JsonObject, where = 'config.json'): RobertaConfig {
  return parseBertConfig(json, where);
}

export function sanitizeRobertaKey(key: string): string | null {
  const k = sanitizeBertKey('roberta', key);
  return k === null || k.startsWith('roberta.pooler.') ? null : k;
}

export const robertaFamily: EncoderFamily<RobertaConfig> = {
  name: 'roberta',
  task: 'text',
  parseConfig: parseRobertaConfig,
  build: (cfg, opts) => new BertForSequenceClassification(cfg, opts),
  sanitizeKey: (_cfg, key) => sanitizeRobertaKey(key),
  optionalPrefixes: ['classifier.'],
  architecture: 'RobertaForSequenceClassification',
  defaultTargets: ['query', 'value'],
  headModules: ['classifier'],
};
