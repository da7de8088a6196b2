// The lorakit CLI end to end, as a user runs it: a tiny model folder → train (LoRA) → eval
// with and without the adapter → generate → merge → generate on the merged folder (same
// greedy tokens) → inspect; a config file under flags; --resume; chat with piped stdin.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { getPeftModel } from '../../src/lora/index.js';
import { loadModel } from '../../src/models/load.node.js';
import { lorakit, writeData, writeTinyModel, type RunResult } from '../helpers/cli-fixture.js';
import { saveAdapter } from '../../src/lora/files.node.js';

const tmp = mkdtempSync(join(tmpdir(), 'lorakit-cli-flow-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const model = join(tmp, 'model');
const run = join(tmp, 'run');
const adapter = join(run, 'adapter');
const merged = join(tmp, 'merged');
let data: { train: string; valid: string };

function ok(r: RunResult, what: string): RunResult {
  assert.equal(r.status, 0, `${what} failed:\n${r.stderr}`);
  return r;
}

function evalLoss(args: string[]): number {
  const r = ok(lorakit(['eval', '--model', model, '--data', data.valid, '--json', ...args]), 'eval');
  const res = JSON.parse(r.stdout) as { loss: number; perplexity: number; targets: number };
  assert.ok(Math.abs(res.perplexity - Math.exp(res.loss)) < 1e-9 * res.perplexity);
  assert.equal(res.targets, 120);
  return res.loss;
}

function generated(r: RunResult): { text: string; ids: string } {
  const ids = /^ids: (.*)$/m.exec(r.stderr);
  assert.ok(ids, `no ids line in:\n${r.stderr}`);
  return { text: r.stdout, ids: ids[1]! };
}

describe('lorakit train → eval → generate → merge → inspect', () => {
  let trainOut: RunResult;
  before(async () => {
    await writeTinyModel(model);
    data = writeData(tmp);
    trainOut = lorakit([
      'train', '--model', model, '--data', data.train, '--valid', data.valid, '--out', run,
      '--steps', '30', '--lr', '5e-3', '--batch-size', '4', '--targets', 'all-linear', '--eval-every', '10', '--save-every', '10', '--seed', '3',
    ]);
  });

  it('trains, saves the adapter in PEFT layout (and in every checkpoint) and prints a summary', () => {
    ok(trainOut, 'train');
    const out = trainOut.stdout;
    assert.match(out, /trainable params: 8,192 \|\| all params: 46,496/);
    assert.match(out, /done: 30 steps in [\d.]+ s, \d+ tokens\/s/);
    assert.match(out, /train loss: first [\d.]+, final [\d.]+ \(perplexity [\d.]+\)/);
    assert.match(out, /validation loss: [\d.]+ \(perplexity [\d.]+\), best [\d.]+/);
    assert.ok(out.includes(`adapter: ${adapter}`));
    assert.ok(out.includes(`report: ${join(run, 'report.md')}`));
    const cfg = JSON.parse(readFileSync(join(adapter, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(cfg.base_model_name_or_path, model);
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(cfg.r, 8);
    assert.equal(cfg.lora_alpha, 16);
    assert.deepEqual(cfg.target_modules, ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    for (const step of ['step-0000020', 'step-0000030']) {
      const ck = join(run, 'checkpoints', step);
      for (const f of ['adapter_config.json', 'adapter_model.safetensors', 'trainer_state.json', 'trainable.safetensors']) assert.ok(existsSync(join(ck, f)), `${ck}/${f}`);
    }
    // the last checkpoint's adapter is the final adapter, byte for byte
    assert.deepEqual(readFileSync(join(run, 'checkpoints', 'step-0000030', 'adapter_model.safetensors')), readFileSync(join(adapter, 'adapter_model.safetensors')));
    assert.ok(existsSync(join(run, 'best', 'adapter_model.safetensors')));
    // the training losses fall
    const rows = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; loss: number });
    const train = rows.filter((r) => r.type === 'train');
    assert.equal(train.length, 30);
    assert.ok(train[29]!.loss < train[0]!.loss / 4, `loss ${train[0]!.loss} → ${train[29]!.loss}`);
  });

  it('eval: the adapter gives a much lower loss than the base, equal to training\'s last validation loss', () => {
    const base = evalLoss([]);
    const tuned = evalLoss(['--adapter', adapter, '--batch-size', '3']);
    assert.ok(tuned < base - 2, `base ${base}, with adapter ${tuned}`);
    const report = JSON.parse(readFileSync(join(run, 'report.json'), 'utf8')) as { finalValidLoss: number };
    assert.ok(Math.abs(tuned - report.finalValidLoss) < 1e-4, `eval ${tuned} vs training's ${report.finalValidLoss}`);
    const text = ok(lorakit(['eval', '--model', model, '--adapter', adapter, '--data', data.valid]), 'eval').stdout;
    assert.match(text, /6 examples, 120 target tokens/);
    assert.match(text, /^loss [\d.]+, perplexity [\d.]+/m);
  });

  it('generate streams the adapter\'s continuation; merge; the merged folder generates the same tokens', () => {
    const args = ['--prompt', 'the red', '--max-tokens', '16', '--ids'];
    const withAdapter = generated(ok(lorakit(['generate', '--model', model, '--adapter', adapter, ...args]), 'generate'));
    const base = generated(ok(lorakit(['generate', '--model', model, ...args]), 'generate'));
    assert.notEqual(withAdapter.ids, base.ids);
    // the toy language: "the red cat sits and the cat sits again."
    assert.ok(withAdapter.text.startsWith(' cat sits and the cat sits again.'), JSON.stringify(withAdapter.text));

    const m = ok(lorakit(['merge', '--model', model, '--adapter', adapter, '--out', merged]), 'merge');
    assert.match(m.stdout, /wrote .*merged: config\.json, model\.safetensors \(38,304 params, f32/);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) assert.ok(existsSync(join(merged, f)), f);
    const fromMerged = generated(ok(lorakit(['generate', '--model', merged, ...args]), 'generate merged'));
    assert.equal(fromMerged.ids, withAdapter.ids);
    assert.equal(fromMerged.text, withAdapter.text);
    // and it scores like base + adapter
    const r = ok(lorakit(['eval', '--model', merged, '--data', data.valid, '--json']), 'eval merged');
    assert.ok(Math.abs((JSON.parse(r.stdout) as { loss: number }).loss - evalLoss(['--adapter', adapter])) < 1e-4);
  });

  it('generate with several named adapters and --adapter-name', () => {
    // a fresh adapter (B = 0) changes nothing
    const zero = join(tmp, 'zero-adapter');
    saveAdapter(getPeftModel(loadModel(model), { r: 4, target_modules: ['q_proj', 'v_proj'] }), zero);
    const args = ['generate', '--model', model, '--adapter', `tuned=${adapter}`, '--adapter', `zero=${zero}`, '--prompt', 'the red', '--max-tokens', '12', '--ids'];
    const base = generated(ok(lorakit(['generate', '--model', model, '--prompt', 'the red', '--max-tokens', '12', '--ids']), 'base'));
    const tuned = generated(ok(lorakit([...args]), 'first adapter by default'));
    const z = generated(ok(lorakit([...args, '--adapter-name', 'zero']), 'zero'));
    const both = generated(ok(lorakit([...args, '--adapter-name', 'tuned,zero']), 'both'));
    assert.equal(z.ids, base.ids);
    assert.notEqual(tuned.ids, base.ids);
    assert.equal(both.ids, tuned.ids);
    const bad = lorakit([...args, '--adapter-name', 'nope']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^lorakit: --adapter-name: no adapter named nope \(loaded: tuned, zero\)$/m);
  });

  it('merge --dtype bf16 writes bf16 weights that load and generate', () => {
    const out = join(tmp, 'merged-bf16');
    ok(lorakit(['merge', '--model', model, '--adapter', adapter, '--out', out, '--dtype', 'bf16']), 'merge bf16');
    const info = ok(lorakit(['inspect', out]), 'inspect').stdout;
    assert.match(info, /^dtype:\s+BF16$/m);
    const args = ['--prompt', 'the red', '--max-tokens', '8'];
    const g = ok(lorakit(['generate', '--model', out, ...args]), 'generate bf16');
    // bf16 rounding keeps the greedy continuation of the toy language the adapter learned
    const unmerged = ok(lorakit(['generate', '--model', model, '--adapter', adapter, ...args]), 'generate with the adapter');
    assert.equal(g.stdout, unmerged.stdout);
    assert.ok(g.stdout.startsWith(' cat sits and the cat'), JSON.stringify(g.stdout));
  });

  it('inspect describes the model folder, the merged folder and the adapter', () => {
    for (const dir of [model, merged]) {
      const out = ok(lorakit(['inspect', dir]), 'inspect').stdout;
      assert.match(out, /^architecture:\s+LlamaForCausalLM$/m);
      assert.match(out, /^model_type:\s+llama$/m);
      assert.match(out, /^layers:\s+2$/m);
      assert.match(out, /^hidden size:\s+32$/m);
      assert.match(out, /^attention heads:\s+4 \(2 key\/value heads\)$/m);
      assert.match(out, /^parameters:\s+38,304$/m);
      assert.match(out, /^dtype:\s+F32$/m);
      assert.match(out, /^size on disk:\s+\d+ KiB \(model\.safetensors\)$/m);
    }
    // LoRA count from config.json alone: q,v at r=8 on 2 layers: 2·8·(32+32) + 2·8·(32+16)
    const lora = ok(lorakit(['inspect', model, '--r', '8', '--targets', 'q_proj,v_proj']), 'inspect --r').stdout;
    assert.match(lora, /^LoRA:\s+r=8, alpha=16 on 4 modules \(q_proj, v_proj\)$/m);
    assert.match(lora, /^trainable params:\s+1,792 /m);
    assert.match(lora, /^training memory:\s+~[\d.]+ MiB \(estimate/m);
    const a = ok(lorakit(['inspect', adapter]), 'inspect adapter').stdout;
    assert.match(a, /^peft_type:\s+LORA$/m);
    assert.ok(a.includes(`base model:           ${model}`));
    assert.match(a, /^adapted modules:\s+14 \(down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj\)$/m);
    assert.match(a, /^ranks:\s+r=8 on 14 modules$/m);
    assert.match(a, /^lora_alpha:\s+16 \(scaling 2\)$/m);
    assert.match(a, /^DoRA:\s+no$/m);
    assert.match(a, /^parameters:\s+8,192$/m);
  });

  it('chat over piped stdin: template, kept history, /reset, /exit', () => {
    const r = ok(lorakit(['chat', '--model', model, '--adapter', adapter, '--max-tokens', '6'], { input: 'the red\n/reset\nthe red\nthe blue\n/exit\nnever read\n' }), 'chat');
    const turns = [...r.stderr.matchAll(/^\[prompt (\d+) tokens, (\d+) generated/gm)].map((m) => Number(m[1]));
    assert.equal(turns.length, 3, r.stderr);
    assert.equal(turns[1], turns[0], 'after /reset the prompt is the first turn again');
    assert.ok(turns[2]! > turns[1]! + 6, 'the third turn carries the second turn and its reply');
    const [first, rest] = r.stdout.split('(history cleared)\n') as [string, string];
    assert.ok(rest.startsWith(first), 'the same first turn after /reset gives the same (greedy) reply');
    // generate --chat renders the same first turn
    const g = ok(lorakit(['generate', '--model', model, '--adapter', adapter, '--max-tokens', '6', '--chat', '--prompt', 'the red']), 'generate --chat');
    assert.equal(Number(/^\[prompt (\d+) tokens/m.exec(g.stderr)![1]), turns[0]);
    assert.equal(g.stdout, first);
  });
});

describe('lorakit train with a config file, and --resume', () => {
  let model2: string;
  let d: { train: string; valid: string };
  before(async () => {
    model2 = join(tmp, 'model2');
    await writeTinyModel(model2, { seed: 2 });
    d = writeData(join(tmp, 'data2'));
  });

  it('flags override the config file, config values override defaults, unknown keys warn', () => {
    const cfg = join(tmp, 'train.yaml');
    writeFileSync(cfg, `model: ${model2}\ndata: ${d.train}\nrank: 4\nalpha: 4\nlr: 0.004\nsteps: 3\nbatch-size: 2\nmask_prompt: false\nwarmup_steps: 1\ntargets: q_proj,v_proj\n`);
    const out = join(tmp, 'run-config');
    const r = ok(lorakit(['train', '--config', cfg, '--out', out, '--rank', '2', '--no-progress']), 'train --config');
    assert.match(r.stderr, /^lorakit: warning: config file .*train\.yaml: unknown key\(s\) ignored: warmup_steps$/m);
    assert.match(r.stdout, /LoRA r=2 alpha=4 on 4 modules \(q_proj,v_proj\)/);
    assert.match(r.stdout, /done: 3 steps/);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { config: Record<string, unknown> };
    assert.equal(report.config.rank, 2);
    assert.equal(report.config.lr, 0.004);
    assert.equal(report.config.batchSize, 2);
    assert.equal(report.config.maskPrompt, false);
    assert.equal(report.config.schedule, 'constant', 'a default neither gave');
    const saved = JSON.parse(readFileSync(join(out, 'adapter', 'adapter_config.json'), 'utf8')) as { r: number; lora_alpha: number };
    assert.equal(saved.r, 2);
    assert.equal(saved.lora_alpha, 4);
    // JSON works too, and a flag beats the config's steps even when it is --epochs
    const json = join(tmp, 'train.json');
    writeFileSync(json, JSON.stringify({ model: model2, data: d.train, steps: 50, 'batch-size': 12, 'no-mask-prompt': true, progress: false }));
    const r2 = ok(lorakit(['train', '--config', json, '--out', join(tmp, 'run-json'), '--epochs', '1']), 'train --config json');
    assert.match(r2.stdout, /done: 2 steps/, '24 examples / batch 12 = 2 steps for one epoch');
    assert.doesNotMatch(r2.stderr, /^step /m, 'progress: false');
    const report2 = JSON.parse(readFileSync(join(tmp, 'run-json', 'report.json'), 'utf8')) as { config: Record<string, unknown> };
    assert.equal(report2.config.maskPrompt, false);
  });

  it('--full fine-tunes every weight and saves a model folder that loads', () => {
    const out = join(tmp, 'run-full');
    const r = ok(lorakit(['train', '--model', model2, '--data', d.train, '--valid-split', '0.25', '--out', out, '--full', '--steps', '6', '--lr', '1e-3', '--no-progress']), 'train --full');
    assert.match(r.stdout, /18 training examples \(text\), 6 validation examples/);
    assert.match(r.stdout, /trainable params: 38,304 \|\| all params: 38,304 \|\| trainable%: 100\.0000/);
    assert.ok(r.stdout.includes(`model: ${join(out, 'model')}`));
    const base = JSON.parse(ok(lorakit(['eval', '--model', model2, '--data', d.valid, '--json']), 'eval base').stdout) as { loss: number };
    const tuned = JSON.parse(ok(lorakit(['eval', '--model', join(out, 'model'), '--data', d.valid, '--json']), 'eval full').stdout) as { loss: number };
    assert.ok(tuned.loss < base.loss - 1, `base ${base.loss}, fine-tuned ${tuned.loss}`);
    const e = lorakit(['train', '--model', model2, '--data', d.train, '--out', out, '--full', '--rank', '4']);
    assert.equal(e.status, 2);
    assert.match(e.stderr, /^lorakit: --full trains every weight; LoRA flags do not apply \(--rank\)$/m);
  });

  it('--resume continues a run exactly where it stopped', () => {
    const common = ['train', '--model', model2, '--data', d.train, '--lr', '5e-3', '--batch-size', '4', '--save-every', '3', '--dropout', '0.1', '--seed', '5', '--no-progress'];
    const straight = join(tmp, 'straight');
    ok(lorakit([...common, '--out', straight, '--steps', '8']), 'straight run');
    const split = join(tmp, 'split');
    ok(lorakit([...common, '--out', split, '--steps', '5']), 'first part');
    assert.ok(existsSync(join(split, 'checkpoints', 'step-0000005')));
    const r = ok(lorakit([...common, '--out', split, '--steps', '8', '--resume', split]), 'resumed part');
    assert.match(r.stdout, /done: 8 steps/);
    const a = readFileSync(join(straight, 'adapter', 'adapter_model.safetensors'));
    const b = readFileSync(join(split, 'adapter', 'adapter_model.safetensors'));
    assert.deepEqual(b, a, 'the resumed adapter equals the uninterrupted one');
    const losses = (dir: string): number[] =>
      readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; loss: number }).filter((x) => x.type === 'train').map((x) => x.loss);
    assert.deepEqual(losses(split), losses(straight));
  });
});
