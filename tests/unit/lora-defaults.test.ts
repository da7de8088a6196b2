import assert from 'node:assert/strict';
import { it } from 'node:test';
import { getPeftModel } from '../../src/lora/peft-model.js';
import { createClassifier } from '../../src/models/encoder-load.js';

it('BERT, RoBERTa and ViT adapt query and value by default, as PEFT does', () => {
  const common = { hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 32, num_labels: 3 };
  const configs = [
    { model_type: 'bert', vocab_size: 50, max_position_embeddings: 16, type_vocab_size: 2, ...common },
    { model_type: 'roberta', vocab_size: 50, max_position_embeddings: 20, type_vocab_size: 1, pad_token_id: 1, ...common },
    { model_type: 'vit', image_size: 8, patch_size: 4, num_channels: 3, ...common },
  ];
  for (const cfg of configs) {
    const peft = getPeftModel(createClassifier(cfg, { seed: 1 }), { r: 2 });
    const adapted = peft.config('default').target_modules;
    assert.deepEqual([...(adapted as string[])].sort(), ['query', 'value'], cfg.model_type);
    const trainable = peft.trainableParameters().map(([n]) => n);
    assert.ok(trainable.length > 0 && trainable.every((n) => /\.(query|value)\.lora_[AB]\./.test(n)), `${cfg.model_type}: ${trainable.join(', ')}`);
  }
});
