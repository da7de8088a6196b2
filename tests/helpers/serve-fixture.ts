// A small served setup built by the tests themselves: a byte-level tokenizer with a ChatML
// template, a tiny random llama saved as a Hugging Face folder, and two LoRA adapters with
// random non-zero A and B (PEFT's init_lora_weights=False) on different layers and seeds, so
// base, A and B answer differently. Offline references come from generate() on separate
// model instances: the base alone, or loadPeftModel with one adapter active.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generate, type GenerationResult } from '../../src/generate/index.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { getPeftModel, loadPeftModel } from '../../src/lora/index.js';
import type { CausalLM } from '../../src/models/causal-lm.js';
import { createModel, loadModel, saveModel } from '../../src/models/index.js';
import { CHATML_TEMPLATE, writeByteLevelBpeTokenizer } from './tokenizers.js';

export const WORDS = [' red', ' blue', ' green', ' cat', ' dog', ' bird', ' sits', ' runs', ' sings', ' the', ' and'];

export interface ServeFixture {
  root: string;
  modelDir: string;
  /** the folder run-time adapter loads must come from */
  adapterDir: string;
  /** adapter folders inside adapterDir */
  adapterA: string;
  adapterB: string;
  tokenizer: Tokenizer;
  /** offline greedy (or seeded) reference: model 'base' | 'A' | 'B' */
  offline(which: 'base' | 'A' | 'B', prompt: readonly number[], opts: { maxNewTokens: number; temperature?: number; topP?: number; seed?: number; stopStrings?: string[]; stopTokenIds?: number[] }): GenerationResult;
  cleanup(): void;
}

export async function makeServeFixture(opts: { hidden?: number; layers?: number } = {}): Promise<ServeFixture> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-serve-'));
  const modelDir = path.join(root, 'tiny-llama');
  const tw = writeByteLevelBpeTokenizer(modelDir, {
    extraWords: WORDS,
    specialTokens: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
    chatTemplate: CHATML_TEMPLATE,
  });
  fs.writeFileSync(path.join(modelDir, 'generation_config.json'), JSON.stringify({ eos_token_id: [tw.id('<|endoftext|>'), tw.id('<|im_end|>')] }));
  const tokenizer = Tokenizer.fromFolder(modelDir);
  const hidden = opts.hidden ?? 32;
  const model = createModel(
    {
      model_type: 'llama',
      vocab_size: tokenizer.vocabSize,
      hidden_size: hidden,
      intermediate_size: hidden * 2,
      num_hidden_layers: opts.layers ?? 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 256,
      rms_norm_eps: 1e-6,
      tie_word_embeddings: false,
    },
    { seed: 7 },
  );
  // a random init gives nearly flat logits; a wider head spreads them (fewer near-ties)
  const head = model.getModule('lm_head').ownParameters()[0]![1].data;
  for (let i = 0; i < head.length; i++) head[i]! *= 25;
  await saveModel(model, modelDir);

  const adapterDir = path.join(root, 'adapters');
  const adapterA = path.join(adapterDir, 'a');
  const adapterB = path.join(adapterDir, 'b');
  const specs: [string, string[], number][] = [
    [adapterA, ['q_proj', 'v_proj', 'o_proj'], 11],
    [adapterB, ['gate_proj', 'up_proj', 'down_proj'], 23],
  ];
  for (const [dir, targets, seed] of specs) {
    const m = loadModel(modelDir);
    const peft = getPeftModel(m, { r: 4, lora_alpha: 16, target_modules: targets, init_lora_weights: false }, 'default', { seed });
    peft.saveAdapter(dir, { baseModelNameOrPath: modelDir });
  }

  const models = new Map<string, CausalLM>();
  const modelOf = (which: 'base' | 'A' | 'B'): CausalLM => {
    let m = models.get(which);
    if (!m) {
      m = which === 'base' ? loadModel(modelDir) : loadPeftModel(loadModel(modelDir), which === 'A' ? adapterA : adapterB).model;
      models.set(which, m);
    }
    return m;
  };
  return {
    root,
    modelDir,
    adapterDir,
    adapterA,
    adapterB,
    tokenizer,
    offline(which, prompt, o) {
      const g: Parameters<typeof generate>[2] = { maxNewTokens: o.maxNewTokens, tokenizer, temperature: o.temperature ?? 0, topP: o.topP ?? 1, seed: o.seed ?? 0 };
      if (o.stopStrings) g.stopStrings = o.stopStrings;
      if (o.stopTokenIds) g.stopTokenIds = o.stopTokenIds;
      return generate(modelOf(which), [prompt], g)[0]!;
    },
    cleanup() {
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Short prompts over the fixture's words (deterministic). */
export function prompts(count: number, seed = 1): string[] {
  const out: string[] = [];
  let s = seed;
  const next = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % 1000;
  for (let i = 0; i < count; i++) {
    const len = 1 + (next() % 7);
    let p = 'the';
    for (let j = 0; j < len; j++) p += WORDS[next() % WORDS.length];
    out.push(p);
  }
  return out;
}
