// The lorakit CLI's usage and error paths: --help on every command, the 175B trainable count
// from a bare config.json, and one clear line with a non-zero exit for every mistake.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getPeftModel } from '../../src/lora/index.js';
import { createModel } from '../../src/models/load.js';
import { lorakit, writeData, writeTinyModel, type RunResult } from '../helpers/cli-fixture.js';
import { saveAdapter } from '../../src/lora/files.node.js';

const tmp = mkdtempSync(join(tmpdir(), 'lorakit-cli-errors-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** stderr without warning lines (e.g. the slow-backend notice): the error itself. */
function errorLines(r: RunResult): string[] {
  return r.stderr.split('\n').filter((l) => l.length > 0 && !l.startsWith('lorakit: warning: '));
}

/** Exit code `status`, and exactly one stderr line (no stack trace) matching `expected`. */
function fails(r: RunResult, status: number, expected: RegExp | string): void {
  assert.equal(r.status, status, `exit ${r.status}, stderr:\n${r.stderr}`);
  const lines = errorLines(r);
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  if (typeof expected === 'string') assert.equal(lines[0], expected);
  else assert.match(lines[0]!, expected);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

describe('lorakit --help', () => {
  it('every command has --help', () => {
    for (const cmd of [['train'], ['generate'], ['chat'], ['eval'], ['merge'], ['inspect'], ['data', 'check'], ['backend']]) {
      const r = lorakit([...cmd, '--help']);
      assert.equal(r.status, 0, `${cmd.join(' ')} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: lorakit ${cmd.join(' ')} `, 'm'));
    }
    const top = lorakit(['--help']);
    assert.equal(top.status, 0);
    for (const c of ['train', 'generate', 'chat', 'eval', 'merge', 'inspect', 'data', 'backend']) assert.match(top.stdout, new RegExp(`^  ${c}\\b`, 'm'));
    const train = lorakit(['train', '--help']).stdout;
    for (const f of ['--rank', '--alpha', '--dropout', '--targets', '--rslora', '--dora', '--init', '--epochs', '--steps', '--batch-size', '--grad-accum', '--lr', '--schedule', '--warmup', '--max-length', '--pack', '--mask-prompt', '--no-mask-prompt', '--seed', '--eval-every', '--save-every', '--grad-checkpoint', '--max-grad-norm', '--resume', '--full', '--config', '--valid', '--valid-split']) {
      assert.ok(train.includes(f), `train --help lacks ${f}`);
    }
  });
});

describe('lorakit inspect --config', () => {
  it('a GPT-3-175B-shaped config with r=8 on q,v: 37,748,736 trainable params, from config.json alone', () => {
    const file = join(tmp, 'gpt3-175b.json');
    writeFileSync(file, JSON.stringify({ model_type: 'llama', hidden_size: 12288, num_attention_heads: 96, num_hidden_layers: 96, intermediate_size: 4 * 12288, vocab_size: 50257, tie_word_embeddings: true, torch_dtype: 'float16' }));
    const r = lorakit(['inspect', '--config', file, '--r', '8', '--targets', 'q_proj,v_proj']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^trainable params:\s+37,748,736 /m);
    assert.match(r.stdout, /^LoRA:\s+r=8, alpha=16 on 192 modules \(q_proj, v_proj\)$/m);
    assert.match(r.stdout, /^layers:\s+96$/m);
    assert.match(r.stdout, /^dtype:\s+float16 \(torch_dtype\)$/m);
    // base weights in f16: 2 bytes per parameter of the counted (llama-shaped: 232.5B) model
    const C = 12288;
    const base = 96 * (4 * C * C + 3 * C * 4 * C + 2 * C) + 50257 * C + C;
    assert.match(r.stdout, new RegExp(`^parameters:\\s+${base.toLocaleString('en-US')} \\(from config\\.json\\)$`, 'm'));
    assert.match(r.stdout, /^  base weights:\s+433 GiB$/m);
  });
});

describe('lorakit inspect ADAPTER', () => {
  it('ranks per module (rank_pattern), DoRA, alpha and the parameter count', () => {
    const dir = join(tmp, 'dora-adapter');
    const m = createModel({ model_type: 'llama', vocab_size: 64, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 32 });
    saveAdapter(getPeftModel(m, { r: 8, lora_alpha: 32, target_modules: ['q_proj', 'v_proj'], rank_pattern: { q_proj: 4 }, use_dora: true }), dir, { baseModelNameOrPath: 'some/base' });
    const r = lorakit(['inspect', dir, '--modules']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^base model:\s+some\/base$/m);
    assert.match(r.stdout, /^adapted modules:\s+4 \(q_proj, v_proj\)$/m);
    assert.match(r.stdout, /^ranks:\s+r=4 on 2 modules, r=8 on 2 modules$/m);
    assert.match(r.stdout, /^lora_alpha:\s+32 \(scaling 4\)$/m);
    assert.match(r.stdout, /^DoRA:\s+yes$/m);
    // q: 4·(16+16) + 16 magnitudes; v (8 key/value dims): 8·(16+8) + 8; two layers
    assert.match(r.stdout, new RegExp(`^parameters:\\s+${2 * (4 * 32 + 16 + 8 * 24 + 8)}$`, 'm'));
    assert.match(r.stdout, /^  model\.layers\.0\.self_attn\.q_proj: r=4, A \[4, 16\], B \[16, 4\]$/m);
    assert.match(r.stdout, /^  model\.layers\.1\.self_attn\.v_proj: r=8, A \[8, 16\], B \[8, 8\]$/m);
  });
});

describe('lorakit errors: one line, non-zero exit', () => {
  const model = join(tmp, 'model');
  const other = join(tmp, 'other-adapter');
  const notModel = join(tmp, 'not-a-model');
  let data: { train: string; valid: string };
  before(async () => {
    await writeTinyModel(model);
    data = writeData(tmp);
    mkdirSync(notModel, { recursive: true });
    writeFileSync(join(notModel, 'readme.txt'), 'hello');
    // an adapter trained for a wider model (hidden 48): it does not fit the 32-wide one
    const wide = createModel({ model_type: 'llama', vocab_size: 308, hidden_size: 48, intermediate_size: 96, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128, tie_word_embeddings: false });
    saveAdapter(getPeftModel(wide, { r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] }), other);
  });

  const trainArgs = (): string[] => ['train', '--model', model, '--data', data.train, '--out', join(tmp, 'run'), '--steps', '1'];

  it('wrong paths name the path', () => {
    const missing = join(tmp, 'nope');
    fails(lorakit(['train', '--model', missing, '--data', data.train, '--out', join(tmp, 'r')]), 2, `lorakit: model folder ${missing} does not exist`);
    fails(lorakit(['train', '--model', model, '--data', join(tmp, 'nope.jsonl'), '--out', join(tmp, 'r')]), 2, `lorakit: data file ${join(tmp, 'nope.jsonl')} does not exist`);
    fails(lorakit(['eval', '--model', model, '--data', data.valid, '--adapter', missing]), 2, `lorakit: adapter folder ${missing} does not exist`);
    fails(lorakit(['inspect', missing]), 2, `lorakit: ${missing} does not exist`);
    fails(lorakit([...trainArgs(), '--resume', missing]), 2, `lorakit: --resume ${missing} does not exist`);
  });

  it('a folder that is not a model folder', () => {
    fails(lorakit(['generate', '--model', notModel, '--prompt', 'x']), 2, `lorakit: not a model folder: ${notModel} has no config.json`);
    fails(lorakit(['inspect', notModel]), 2, `lorakit: not a model folder: ${notModel} has no config.json (nor adapter_config.json)`);
    fails(lorakit(['train', '--model', data.train, '--data', data.train, '--out', join(tmp, 'r')]), 2, `lorakit: not a model folder: ${data.train} is a file`);
    fails(lorakit(['generate', '--model', model, '--adapter', model, '--prompt', 'x']), 2, `lorakit: not an adapter folder: ${model} has no adapter_config.json (it is a model folder)`);
  });

  it('an adapter that does not fit the model names the first mismatching tensor and both shapes', () => {
    for (const cmd of [['generate', '--prompt', 'x'], ['eval', '--data', data.valid], ['merge', '--out', join(tmp, 'm')], ['chat']]) {
      fails(
        lorakit([cmd[0]!, '--model', model, '--adapter', other, ...cmd.slice(1)]),
        1,
        `lorakit: adapter ${other} does not fit model ${model}: tensor base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight has shape [8, 48], the model expects [8, 32] (and 7 more)`,
      );
    }
  });

  it('unknown flags and bad flag values', () => {
    fails(lorakit([...trainArgs(), '--frobnicate']), 2, /^lorakit: unknown option '--frobnicate'/);
    fails(lorakit([...trainArgs(), '--rank', '0']), 2, /^lorakit: option '--rank <r>' argument '0' is invalid\. expected a positive integer, got "0"/);
    fails(lorakit([...trainArgs(), '--lr', 'abc']), 2, /^lorakit: option '--lr <x>' argument 'abc' is invalid\. expected a positive number, got "abc"/);
    fails(lorakit([...trainArgs(), '--dropout', '1.5']), 2, /argument '1\.5' is invalid\. expected a number in \[0, 1\)/);
    fails(lorakit([...trainArgs(), '--schedule', 'wavy']), 2, /argument 'wavy' is invalid\. expected one of constant, linear, cosine, got "wavy"/);
    fails(lorakit([...trainArgs(), '--init', 'olora']), 2, /argument 'olora' is invalid\. expected true, false, gaussian, pissa or pissa_niter_<n>/);
    fails(lorakit(['generate', '--model', model, '--prompt', 'x', '--top-p', '2']), 2, /'--top-p <p>' argument '2' is invalid\. expected a number in \(0, 1\]/);
    fails(lorakit(['merge', '--model', model, '--adapter', other, '--out', join(tmp, 'm'), '--dtype', 'f64']), 2, /'--dtype <dtype>' argument 'f64' is invalid/);
    fails(lorakit(['frobnicate']), 2, /^lorakit: unknown command 'frobnicate'/);
  });

  it('missing and conflicting options', () => {
    fails(lorakit(['train', '--data', data.train, '--out', join(tmp, 'r')]), 2, 'lorakit: missing --model DIR (give the flag, or set it in the --config file)');
    fails(lorakit([...trainArgs(), '--epochs', '2']), 2, 'lorakit: give --epochs or --steps, not both');
    fails(lorakit([...trainArgs(), '--valid', data.valid, '--valid-split', '0.2']), 2, 'lorakit: give --valid or --valid-split, not both');
    fails(lorakit(['merge', '--model', model, '--out', join(tmp, 'm')]), 2, 'lorakit: missing --adapter DIR (give the flag, or set it in the --config file)');
    fails(lorakit(['merge', '--model', model, '--adapter', other, '--out', model]), 2, `lorakit: --out ${model} is the --model folder; writing there would overwrite it; choose another folder`);
  });

  it('bad values in a config file name the file and the key', () => {
    const cfg = join(tmp, 'bad.yaml');
    writeFileSync(cfg, 'rank: 0\n');
    fails(lorakit([...trainArgs(), '--config', cfg]), 2, `lorakit: config file ${cfg}: rank: expected a positive integer, got "0"`);
    writeFileSync(cfg, 'pack: yes please\n');
    fails(lorakit([...trainArgs(), '--config', cfg]), 2, `lorakit: config file ${cfg}: pack must be true or false, got "yes please"`);
    writeFileSync(cfg, '- a list\n');
    fails(lorakit([...trainArgs(), '--config', cfg]), 2, `lorakit: config file ${cfg} must hold a mapping of option names to values, got a list`);
    fails(lorakit([...trainArgs(), '--config', join(tmp, 'none.yaml')]), 2, `lorakit: config file ${join(tmp, 'none.yaml')} does not exist`);
  });

  it('chat (and generate --chat) on a model without a chat template', () => {
    const plain = join(tmp, 'no-template');
    mkdirSync(plain, { recursive: true });
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) copyFileSync(join(model, f), join(plain, f));
    const tc = JSON.parse(readFileSync(join(model, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    delete tc.chat_template;
    writeFileSync(join(plain, 'tokenizer_config.json'), JSON.stringify(tc));
    fails(lorakit(['chat', '--model', plain], { input: 'hello\n' }), 1, `lorakit: model folder ${plain} has no chat template (tokenizer_config.json chat_template or chat_template.jinja); chat needs one`);
    fails(lorakit(['generate', '--model', plain, '--prompt', 'x', '--chat']), 1, `lorakit: model folder ${plain} has no chat template (tokenizer_config.json chat_template or chat_template.jinja); drop --chat`);
  });

  it('bad data names the file and line', () => {
    const bad = join(tmp, 'bad.jsonl');
    writeFileSync(bad, '{"text":"the red cat"}\n{"txt":"x"}\n');
    fails(lorakit(['train', '--model', model, '--data', bad, '--out', join(tmp, 'r'), '--steps', '1']), 1, `lorakit: ${bad}:2: missing field "text"`);
  });
});
