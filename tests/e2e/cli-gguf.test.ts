// lorakit export --format gguf from the command line: adapters that have no llama.cpp form are
// refused with the reason, rank/alpha patterns and rsLoRA fold into B, and a GGUF model is
// accepted wherever a model folder is (inspect shows it). docs/ARCHITECTURE.md §GGUF.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { GgufFile } from '../../src/io/index.node.js';
import { tmpDir } from '../helpers/io-tmp.js';

function lorakit(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, ['bin/lorakit.js', ...args], { encoding: 'utf8' });
}

const BASE = 'tests/fixtures/models/llama-gqa-llama3rope';

test('lorakit export: adapters to GGUF, refusals with their reason, a GGUF model as --model', () => {
  const dir = tmpDir('lorakit-cli-gguf-');
  const dora = lorakit(['export', '--model', BASE, '--adapter', 'tests/fixtures/adapters/llama-dora', '--out', path.join(dir, 'd.gguf')]);
  assert.equal(dora.status, 2);
  assert.match(dora.stderr, /^lorakit: adapter tests\/fixtures\/adapters\/llama-dora cannot be exported to GGUF: DoRA adapters have no llama.cpp form \(merge it with lorakit merge, then export the model\)\n$/);
  const gpt2 = lorakit(['export', '--model', 'tests/fixtures/models/gpt2', '--adapter', 'tests/fixtures/adapters/gpt2-c_attn', '--out', path.join(dir, 'g.gguf')]);
  assert.equal(gpt2.status, 2);
  assert.match(gpt2.stderr, /transformer\.h\.0\.attn\.c_attn is a Conv1D layer \(GPT-2\), which GGUF export does not cover/);
  const badType = lorakit(['export', '--model', BASE, '--adapter', 'tests/fixtures/adapters/llama-qv', '--type', 'q4_k', '--out', path.join(dir, 'q.gguf')]);
  assert.equal(badType.status, 2);
  assert.match(badType.stderr, /--type q4_k is not an adapter type \(one of f32, f16, bf16, q8_0\)/);

  const out = path.join(dir, 'p.gguf');
  const ok = lorakit(['export', '--model', BASE, '--adapter', 'tests/fixtures/adapters/llama-all-rslora-patterns', '--out', out]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^wrote .*p\.gguf: GGUF LoRA adapter, 14 layers, f32/);
  const g = GgufFile.open(out);
  try {
    assert.equal(g.metadata.string('general.type'), 'adapter');
    for (const t of g.tensors) {
      const pair = t.name.endsWith('.lora_a') ? 'a' : 'b';
      // lora_a ne [in, r], lora_b ne [r, out]: the rank is ne[1] of a and ne[0] of b
      const other = g.tensors.find((u) => u.name === t.name.replace(/lora_[ab]$/, pair === 'a' ? 'lora_b' : 'lora_a'))!;
      assert.equal(pair === 'a' ? t.ne[1] : t.ne[0], pair === 'a' ? other.ne[0] : other.ne[1], t.name);
    }
  } finally {
    g.close();
  }

  const model = path.join(dir, 'm.gguf');
  assert.equal(lorakit(['export', '--model', 'models/brown-llama', '--type', 'q4_0', '--out', model]).status, 0);
  const shown = lorakit(['inspect', model, '--r', '8']);
  assert.equal(shown.status, 0, shown.stderr);
  assert.match(shown.stdout, /^GGUF model: +.*m\.gguf$/m);
  assert.match(shown.stdout, /^dtype: +Q4_0 \([\d,]+\), Q6_K \([\d,]+\), F16 \([\d,]+\), F32 \([\d,]+\)$/m);
  assert.match(shown.stdout, /^ {2}by weight format: +f32 15\.1 MiB, bf16 7\.5 MiB, q8_0 4\.0 MiB, q6_k 3\.1 MiB, q4_k 2\.1 MiB, q4_0 2\.1 MiB$/m);
  // held as loaded: Q4_0 and Q6_K blocks as they are (18/32, 210/256 bytes a value), F16 and F32 as f32
  const held = (2_195_456 * 18) / 32 + (1_048_576 * 210) / 256 + (704_512 + 2_304) * 4;
  assert.match(shown.stdout, new RegExp(`^ {2}base weights: +${(held / 2 ** 20).toFixed(1).replace('.', '\\.')} MiB \\(GGUF: quantized matrices held as blocks\\)$`, 'm'));
  const notModel = lorakit(['generate', '--model', path.join(dir, 'p.gguf'), '--prompt', 'x']);
  assert.equal(notModel.status, 1);
  assert.match(notModel.stderr, /general\.type is "adapter": this is not a model/);
});
