// The CLI on a tiny Hugging Face folder of each newer family (Qwen3 with sliding layers,
// SmolLM3 with NoPE layers): inspect counts from config.json, train a LoRA (PEFT layout), eval
// and generate with and without it, merge (the merged folder generates the same tokens), and
// serve the base and the adapter (answers equal `lorakit generate`, through the batched KV cache).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadTokenizer } from '../../src/io/tokenizer.node.js';
import { createModel } from '../../src/models/index.js';
import { saveModel } from '../../src/models/index.node.js';
import { BIN, lorakit, writeData, type RunResult } from '../helpers/cli-fixture.js';
import { CHATML_TEMPLATE, writeByteLevelBpeTokenizer } from '../helpers/tokenizers.js';

const tmp = mkdtempSync(join(tmpdir(), 'lorakit-cli-families-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const data = writeData(tmp);

const WORDS = ['red', 'blue', 'green', 'cat', 'dog', 'bird', 'sits', 'runs', 'sings'].map((w) => ' ' + w);

interface Family {
  type: string;
  config: Record<string, unknown>;
  /** --targets for train (smollm3: PEFT has no default) */
  targets: string;
  /** trainable LoRA parameters at r = 8 on those targets */
  trainable: number;
}

// hidden 32, 2 layers, 4 heads, 2 kv heads; qwen3: head_dim 16 (q is 64 wide), a window of 4 on layer 0
const FAMILIES: Family[] = [
  {
    type: 'qwen3',
    config: { model_type: 'qwen3', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, max_position_embeddings: 128, tie_word_embeddings: false, use_sliding_window: true, sliding_window: 4, layer_types: ['sliding_attention', 'full_attention'], rope_theta: 1000000 },
    targets: 'q_proj,k_proj,v_proj,o_proj',
    // per layer: q 8·(32 + 64), k and v 8·(32 + 32), o 8·(64 + 32)
    trainable: 2 * (8 * 96 + 2 * 8 * 64 + 8 * 96),
  },
  {
    type: 'smollm3',
    config: { model_type: 'smollm3', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128, tie_word_embeddings: false, no_rope_layers: [1, 0] },
    targets: 'all-linear',
    // per layer: q, o 8·64; k, v 8·(32 + 16); gate, up, down 8·96
    trainable: 2 * (2 * 8 * 64 + 2 * 8 * 48 + 3 * 8 * 96),
  },
];

function ok(r: RunResult, what: string): RunResult {
  assert.equal(r.status, 0, `${what} failed:\n${r.stderr}`);
  return r;
}

function idsOf(r: RunResult): string {
  const m = /^ids: (.*)$/m.exec(r.stderr);
  assert.ok(m, `no ids line in:\n${r.stderr}`);
  return m[1]!;
}

async function serveCompletion(args: string[], body: Record<string, unknown>[]): Promise<string[]> {
  const child = spawn(process.execPath, [BIN, 'serve', ...args, '--port', '0', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LORAKIT_THREADS: '1' } });
  let stderr = '';
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "serving" line within 60 s: ${stderr}`)), 60_000);
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /serving .* at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(stderr);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
    });
    // sent together: the scheduler decodes them as one batch over the windowed cache
    return await Promise.all(
      body.map(async (b) => {
        const res = (await (await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) })).json()) as { choices: { text: string }[] };
        return res.choices[0]!.text;
      }),
    );
  } finally {
    child.kill('SIGTERM');
  }
}

for (const fam of FAMILIES) {
  describe(`lorakit on a tiny ${fam.type} folder`, () => {
    const model = join(tmp, fam.type);
    const run = join(tmp, `${fam.type}-run`);
    const adapter = join(run, 'adapter');
    let trainOut: RunResult;
    before(async () => {
      writeByteLevelBpeTokenizer(model, { extraWords: WORDS, chatTemplate: CHATML_TEMPLATE });
      const tok = loadTokenizer(model);
      const m = createModel({ ...fam.config, vocab_size: tok.vocabSize }, { seed: 5 });
      // a random init's logits are too small for a frozen head to show what the adapter learns
      const head = m.getModule('lm_head').ownParameters()[0]![1].data;
      for (let i = 0; i < head.length; i++) head[i]! *= 25;
      await saveModel(m, model);
      trainOut = lorakit(['train', '--model', model, '--data', data.train, '--out', run, '--steps', '12', '--lr', '1e-2', '--batch-size', '4', '--rank', '8', '--targets', fam.targets, '--seed', '2']);
    });

    it('inspect counts the LoRA from config.json alone, as train builds it', () => {
      const r = ok(lorakit(['inspect', model, '--r', '8', '--targets', fam.targets]), 'inspect');
      assert.match(r.stdout, new RegExp(`^model_type:\\s+${fam.type}$`, 'm'));
      const trainable = /^trainable params:\s+([\d,]+)/m.exec(r.stdout);
      assert.ok(trainable, r.stdout);
      assert.equal(Number(trainable[1]!.replace(/,/g, '')), fam.trainable);
      assert.match(r.stdout, /^training memory:\s+~[\d.]+ [KMG]i?B/m);
      ok(trainOut, 'train');
      assert.match(trainOut.stdout, new RegExp(`trainable params: ${fam.trainable.toLocaleString('en-US')} \\|\\|`));
      const cfg = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(cfg.peft_type, 'LORA');
      assert.ok(existsSync(join(adapter, 'adapter_model.safetensors')));
    });

    if (fam.type === 'smollm3') {
      it('without --targets, train asks for them (PEFT has no default for smollm3)', () => {
        const r = lorakit(['train', '--model', model, '--data', data.train, '--out', join(tmp, 'no-targets'), '--steps', '1']);
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /PEFT has no default for model type "smollm3".*--targets/);
      });
    }

    it('eval and generate, base and with the adapter; merge generates the same tokens', () => {
      const loss = (args: string[]): number => (JSON.parse(ok(lorakit(['eval', '--model', model, '--data', data.valid, '--json', ...args]), 'eval').stdout) as { loss: number }).loss;
      const base = loss([]);
      const tuned = loss(['--adapter', adapter]);
      assert.ok(tuned < base, `base ${base}, with the adapter ${tuned}`);
      const args = ['--prompt', 'the red', '--max-tokens', '12', '--ids'];
      const withAdapter = ok(lorakit(['generate', '--model', model, '--adapter', adapter, ...args]), 'generate');
      const plain = ok(lorakit(['generate', '--model', model, ...args]), 'generate base');
      assert.notEqual(idsOf(withAdapter), idsOf(plain));
      const merged = join(tmp, `${fam.type}-merged`);
      ok(lorakit(['merge', '--model', model, '--adapter', adapter, '--out', merged]), 'merge');
      const cfg = JSON.parse(readFileSync(join(merged, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(cfg.model_type, fam.type);
      const fromMerged = ok(lorakit(['generate', '--model', merged, ...args]), 'generate merged');
      assert.equal(idsOf(fromMerged), idsOf(withAdapter));
      assert.equal(fromMerged.stdout, withAdapter.stdout);
    });

    it('serve answers the base and the adapter as `lorakit generate` does', async () => {
      const gen = (extra: string[]): string => ok(lorakit(['generate', '--model', model, '--prompt', 'the red', '--max-tokens', '10', ...extra]), 'generate').stdout.replace(/\n$/, '');
      const want = [gen([]), gen(['--adapter', adapter])];
      const got = await serveCompletion(['--model', model, '--adapter', `tuned=${adapter}`], [
        { model: fam.type === 'qwen3' ? 'qwen3' : 'smollm3', prompt: 'the red', max_tokens: 10, temperature: 0 },
        { model: 'tuned', prompt: 'the red', max_tokens: 10, temperature: 0 },
      ]);
      assert.deepEqual(got, want);
    });
  });
}
