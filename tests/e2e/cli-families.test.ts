// The lorakit CLI on tiny Gemma 3 and Phi-3 folders, as a user runs it: inspect from config.json
// alone (counts as the built model has them), train a LoRA adapter, eval base and adapted,
// generate, merge (the merged folder generates the adapter's tokens), serve (a completion for the
// adapter equals offline generate), and the error that asks for --targets where PEFT has no
// default (phi3). Model correctness itself is held by tests/parity against PyTorch.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadTokenizer } from '../../src/io/tokenizer.node.js';
import { countLoraParameters } from '../../src/lora/count.js';
import { getPeftModel } from '../../src/lora/index.js';
import { createModel } from '../../src/models/index.js';
import { saveModel } from '../../src/models/load.node.js';
import { BIN, lorakit, writeData, type RunResult } from '../helpers/cli-fixture.js';
import { startServer } from '../helpers/serve-fixture.js';
import { CHATML_TEMPLATE, writeByteLevelBpeTokenizer } from '../helpers/tokenizers.js';

const tmp = mkdtempSync(join(tmpdir(), 'lorakit-cli-families-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function ok(r: RunResult, what: string): RunResult {
  assert.equal(r.status, 0, `${what} failed:\n${r.stderr}`);
  return r;
}

const WORDS = ['red', 'blue', 'green', 'cat', 'dog', 'bird', 'sits', 'runs', 'sings'];

/** config.json of each family, small; vocab_size is the tokenizer's */
const FAMILIES: { name: string; config: Record<string, unknown>; targets: string }[] = [
  {
    name: 'gemma3_text',
    config: {
      model_type: 'gemma3_text', architectures: ['Gemma3ForCausalLM'], hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4,
      num_key_value_heads: 2, head_dim: 8, layer_types: ['sliding_attention', 'full_attention'], sliding_window: 6, query_pre_attn_scalar: 8,
      final_logit_softcapping: 30, rope_local_base_freq: 10000, rope_theta: 1000000, max_position_embeddings: 256, tie_word_embeddings: false, initializer_range: 0.3, torch_dtype: 'float32',
    },
    targets: 'q_proj,v_proj', // PEFT's default for gemma3_text: train runs without --targets
  },
  {
    name: 'phi3',
    config: {
      model_type: 'phi3', architectures: ['Phi3ForCausalLM'], hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
      partial_rotary_factor: 0.75, max_position_embeddings: 256, original_max_position_embeddings: 64, sliding_window: 32, tie_word_embeddings: false,
      rope_scaling: { type: 'longrope', short_factor: [1, 1.2, 1.5], long_factor: [2, 4, 8] }, initializer_range: 0.3, torch_dtype: 'float32',
    },
    targets: 'qkv_proj,gate_up_proj',
  },
];

for (const fam of FAMILIES) {
  describe(`lorakit on a tiny ${fam.name} folder`, () => {
    const dir = join(tmp, fam.name);
    const run = join(dir, 'run');
    const adapter = join(run, 'adapter');
    const merged = join(dir, 'merged');
    let data: { train: string; valid: string };
    let config: Record<string, unknown>;
    let trainOut: RunResult;
    const prompt = ' the red cat';

    before(async () => {
      const modelDir = join(dir, 'model');
      mkdirSync(modelDir, { recursive: true });
      writeByteLevelBpeTokenizer(modelDir, { extraWords: WORDS.map((w) => ' ' + w), chatTemplate: CHATML_TEMPLATE });
      const tok = loadTokenizer(modelDir);
      config = { ...fam.config, vocab_size: tok.vocabSize };
      await saveModel(createModel(config, { seed: 5 }), modelDir);
      data = writeData(dir);
      const targets = fam.name === 'gemma3_text' ? [] : ['--targets', fam.targets];
      trainOut = lorakit(['train', '--model', modelDir, '--data', data.train, '--out', run, '--steps', '8', '--lr', '1e-2', '--batch-size', '4', ...targets, '--seed', '1', '--no-progress']);
    });
    const model = (): string => join(dir, 'model');

    it('inspect counts the model and the adapter from config.json alone, as the built model has them', () => {
      const cfgFile = join(dir, 'config-only.json');
      writeFileSync(cfgFile, JSON.stringify(config));
      const r = ok(lorakit(['inspect', '--config', cfgFile, '--r', '8', '--targets', fam.targets]), 'inspect');
      const built = createModel(config);
      const base = built.parameters().reduce((n, p) => n + p.value.size, 0);
      const peft = getPeftModel(built, { r: 8, lora_alpha: 16, target_modules: fam.targets.split(',') });
      const trainable = peft.trainableParameters().reduce((n, [, p]) => n + p.value.size, 0);
      assert.equal(countLoraParameters(config, { r: 8, target_modules: fam.targets.split(',') }).trainable, trainable);
      assert.match(r.stdout, new RegExp(`parameters: +${base.toLocaleString('en-US')} \\(from config\\.json\\)`));
      assert.match(r.stdout, new RegExp(`trainable params: +${trainable.toLocaleString('en-US')} `));
      assert.match(r.stdout, /training memory: +~[\d.]+ [KMG]i?B/);
    });

    it('trains a LoRA adapter in PEFT layout, and eval is lower with it than without', () => {
      ok(trainOut, 'train');
      const cfg = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(cfg.target_modules, fam.targets.split(',').sort());
      const loss = (extra: string[]): number => (JSON.parse(ok(lorakit(['eval', '--model', model(), '--data', data.train, '--json', ...extra]), 'eval').stdout) as { loss: number }).loss;
      const baseLoss = loss([]);
      const adaptedLoss = loss(['--adapter', adapter]);
      assert.ok(Number.isFinite(baseLoss) && adaptedLoss < baseLoss, `eval loss ${baseLoss} → ${adaptedLoss}`);
    });

    it('generate with the adapter equals generate on the merged folder; serve answers as offline generate', async () => {
      const gen = (args: string[]): string => {
        const r = ok(lorakit(['generate', '--prompt', prompt, '--max-tokens', '8', '--ids', ...args]), 'generate');
        return /^ids: (.*)$/m.exec(r.stderr)![1]!;
      };
      const adapted = gen(['--model', model(), '--adapter', adapter]);
      ok(lorakit(['merge', '--model', model(), '--adapter', adapter, '--out', merged]), 'merge');
      assert.equal(gen(['--model', merged]), adapted, 'merged folder, same greedy tokens');
      assert.notEqual(gen(['--model', model()]), adapted, 'the adapter changes the tokens');
      const offline = ok(lorakit(['generate', '--model', model(), '--adapter', adapter, '--prompt', prompt, '--max-tokens', '8']), 'generate').stdout;

      const srv = await startServer(BIN, ['--model', model(), '--adapter', `a=${adapter}`], { ...process.env, LORAKIT_THREADS: '1' });
      let code: number | null;
      try {
        const res = (await (await fetch(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'a', prompt, max_tokens: 8, temperature: 0 }) })).json()) as { choices: { text: string }[] };
        assert.equal(res.choices[0]!.text, offline.replace(/\n$/, ''));
      } finally {
        code = await srv.stop();
      }
      assert.equal(code, 0, srv.stderr());
    });

    if (fam.name === 'phi3') {
      it('asks for --targets: PEFT has no default for phi3', () => {
        const r = lorakit(['train', '--model', model(), '--data', data.train, '--out', join(dir, 'run2'), '--steps', '1']);
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /PEFT has no default for model type "phi3".*--targets/);
      });
    }
  });
}
