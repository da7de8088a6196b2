// The holes of issue 25 at the command line, each fed its bad input: an output folder that is
// the base model through a symlink, a merge whose half-precision cast overflows, Ctrl-C during
// training, a run folder reused by a second run, a torn metrics line and the leftovers of a
// kill at resume, and a model whose weights hold NaN (docs/ARCHITECTURE.md §Files written and
// signals).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readSafetensors, writeSafetensorsSync } from '../../src/io/safetensors.node.js';
import { getPeftModel } from '../../src/lora/index.js';
import { saveAdapter } from '../../src/lora/files.node.js';
import { createModel } from '../../src/models/load.js';
import { loadModel, saveModel } from '../../src/models/load.node.js';
import { loadTokenizer } from '../../src/io/tokenizer.node.js';
import { writeByteLevelBpeTokenizer } from '../helpers/tokenizers.js';
import { writeJsonl } from '../helpers/train-fixture.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { BIN, lorakit, writeData, writeTinyModel } from '../helpers/cli-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'lorakit-cli-reliability-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const model = join(tmp, 'model');
let data: { train: string; valid: string };

function digest(dir: string): string {
  const h = createHash('sha256');
  for (const f of readdirSync(dir).sort()) h.update(f).update(readFileSync(join(dir, f)));
  return h.digest('hex');
}

/** One error line (no stack) with this exit status. */
function fails(r: { status: number | null; stderr: string }, status: number, expected: RegExp | string): void {
  assert.equal(r.status, status, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l && !l.startsWith('lorakit: warning: '));
  assert.equal(lines.length, 1, r.stderr);
  if (typeof expected === 'string') assert.equal(lines[0], expected);
  else assert.match(lines[0]!, expected);
}

/** An adapter for the tiny model whose B·A is large but finite: past the f16 range once merged. */
function hugeAdapter(dir: string): void {
  const m = loadModel(model);
  const peft = getPeftModel(m, { r: 4, lora_alpha: 4, target_modules: ['q_proj'], init_lora_weights: 'gaussian' });
  for (const [name, p] of peft.trainableParameters()) if (name.includes('lora_B')) p.value.f32.fill(300);
  for (const [name, p] of peft.trainableParameters()) if (name.includes('lora_A')) p.value.f32.fill(100);
  saveAdapter(peft, dir);
}

before(async () => {
  await writeTinyModel(model);
  data = writeData(tmp);
});

describe('output folders are checked by real path', () => {
  it('merge --out through a symlink to the base model is refused and the base is untouched', () => {
    const adapter = join(tmp, 'huge-adapter');
    hugeAdapter(adapter);
    const link = join(tmp, 'link-to-model');
    symlinkSync(model, link);
    const before = digest(model);
    fails(lorakit(['merge', '--model', model, '--adapter', adapter, '--out', link]), 2, new RegExp(`^lorakit: --out ${link} is the --model folder \\(both are .*model\\); writing there would overwrite it`));
    // a path with .. that lands on the model folder, and train's --out
    fails(lorakit(['merge', '--model', model, '--adapter', adapter, '--out', join(tmp, 'x', '..', 'model')]), 2, /is the --model folder/);
    fails(lorakit(['train', '--model', model, '--data', data.train, '--out', link, '--steps', '1']), 2, /^lorakit: --out .* is the --model folder/);
    assert.equal(digest(model), before);
  });
});

describe('the finiteness check runs after the final cast', () => {
  it('merge --dtype f16 of an adapter whose sum overflows f16 fails naming the tensor; nothing is written', () => {
    const adapter = join(tmp, 'huge-adapter');
    const out = join(tmp, 'merged-f16');
    const r = lorakit(['merge', '--model', model, '--adapter', adapter, '--out', out, '--dtype', 'f16']);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^lorakit: the model cannot be saved: weights would hold NaN\/Inf: .*model\.layers\.0\.self_attn\.q_proj\.weight: \d+ NaN\/Inf value\(s\) after the cast from f32 to f16/);
    assert.ok(!existsSync(join(out, 'model.safetensors')));
    // in f32 the same merge is finite and is written
    const ok = lorakit(['merge', '--model', model, '--adapter', adapter, '--out', join(tmp, 'merged-f32'), '--dtype', 'f32']);
    assert.equal(ok.status, 0, ok.stderr);
  });

  it('merging into an f16 base (--dtype keep): safe merge checks the f16 values', async () => {
    const half = join(tmp, 'model-f16');
    await saveModel(loadModel(model), half, { dtype: 'f16' });
    for (const f of readdirSync(model)) if (!existsSync(join(half, f))) copyFileSync(join(model, f), join(half, f));
    const out = join(tmp, 'merged-keep');
    const r = lorakit(['merge', '--model', half, '--adapter', join(tmp, 'huge-adapter'), '--out', out]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /safe merge: adapter "default" gives \d+ NaN\/Inf value\(s\) in the merged weights of module model\.layers\.0\.self_attn\.q_proj \(the sum is finite in f32 but exceeds the f16 range/);
    assert.ok(!existsSync(out));
  });
});

describe('non-finite base weights', () => {
  it('eval, generate and train refuse a model whose weights hold NaN, naming the tensor', () => {
    const bad = join(tmp, 'model-nan');
    mkdirSync(bad);
    for (const f of readdirSync(model)) copyFileSync(join(model, f), join(bad, f));
    const st = readSafetensors(join(model, 'model.safetensors'));
    const tensors = new Map(st.tensors);
    const w = tensors.get('model.layers.1.mlp.down_proj.weight')!.toF32Array(true);
    w[5] = NaN;
    w[7] = Infinity;
    tensors.set('model.layers.1.mlp.down_proj.weight', Tensor.fromF32(w, tensors.get('model.layers.1.mlp.down_proj.weight')!.shape));
    writeSafetensorsSync(join(bad, 'model.safetensors'), tensors);
    const expected = /tensor model\.layers\.1\.mlp\.down_proj\.weight holds 2 NaN\/Inf value\(s\) of \d+; the checkpoint is damaged/;
    for (const args of [
      ['eval', '--model', bad, '--data', data.valid],
      ['generate', '--model', bad, '--prompt', 'the'],
      ['train', '--model', bad, '--data', data.train, '--out', join(tmp, 'run-nan'), '--steps', '1'],
    ]) {
      const r = lorakit(args);
      assert.equal(r.status, 1, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, expected, args[0]);
    }
  });
});

describe('run folders', () => {
  it('a second run into a used folder is refused; --resume continues it', () => {
    const out = join(tmp, 'run-reuse');
    const r1 = lorakit(['train', '--model', model, '--data', data.train, '--out', out, '--steps', '4', '--save-every', '2', '--no-progress']);
    assert.equal(r1.status, 0, r1.stderr);
    fails(lorakit(['train', '--model', model, '--data', data.train, '--out', out, '--steps', '2', '--no-progress']), 2, `lorakit: --out ${out} holds another run (checkpoints/step-0000004); continue it with --resume ${out}, or choose a new folder (or remove that one)`);
    assert.deepEqual(readdirSync(join(out, 'checkpoints')), ['step-0000002', 'step-0000004']);
  });

  it('a torn last metrics line and the hidden leftovers of a kill do not block --resume; they are cleaned', () => {
    const out = join(tmp, 'run-torn');
    const r1 = lorakit(['train', '--model', model, '--data', data.train, '--out', out, '--steps', '6', '--save-every', '3', '--no-progress']);
    assert.equal(r1.status, 0, r1.stderr);
    rmSync(join(out, 'checkpoints', 'step-0000006'), { recursive: true });
    // what a kill -9 leaves: a half-appended row and a half-written checkpoint folder of a dead process
    appendFileSync(join(out, 'metrics.jsonl'), '{"type":"train","step":7,"loss":3.1');
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const leftover = join(out, 'checkpoints', `.step-0000006.new-${dead}-0123456789ab`);
    mkdirSync(leftover);
    appendFileSync(join(leftover, 'trainable.safetensors'), 'partial');
    const r2 = lorakit(['train', '--model', model, '--data', data.train, '--out', out, '--steps', '6', '--resume', out, '--no-progress']);
    assert.equal(r2.status, 0, r2.stderr);
    assert.match(r2.stderr, /metrics\.jsonl:\d+: dropped a torn last line/);
    assert.match(r2.stderr, /removed a leftover of an interrupted write/);
    assert.deepEqual(readdirSync(join(out, 'checkpoints')).sort(), ['step-0000003', 'step-0000006']);
    const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);
    assert.deepEqual(steps, [1, 2, 3, 4, 5, 6]);
  });
});

describe('Ctrl-C during train', () => {
  it('SIGINT finishes the step, writes a checkpoint and the adapter, exits 130; --resume ends bit-identical to an uninterrupted run', async () => {
    const out = join(tmp, 'run-sigint');
    const args = ['train', '--model', model, '--data', data.train, '--steps', '300', '--seed', '3'];
    const child = spawn(process.execPath, [BIN, ...args, '--out', out], { env: { ...process.env, LORAKIT_THREADS: '1' } });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const status = await new Promise<number | null>((resolve) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        // the first step line is printed after step 1: interrupt a run under way
        if (/^step 1\/300/m.test(stderr) && child.signalCode === null && !child.killed) child.kill('SIGINT');
      });
      child.on('exit', (code) => resolve(code));
    });
    assert.equal(status, 130, stderr);
    assert.match(stderr, /SIGINT: finishing this step/);
    const ckpts = readdirSync(join(out, 'checkpoints'));
    assert.equal(ckpts.length, 1);
    const at = Number(ckpts[0]!.slice(5));
    assert.ok(at >= 1 && at < 300, `checkpoint at step ${at}`);
    assert.match(stdout, new RegExp(`interrupted \\(SIGINT\\): .*continue with --resume ${out}`));
    assert.ok(existsSync(join(out, 'adapter', 'adapter_model.safetensors')));
    const resumed = lorakit([...args, '--out', out, '--resume', out, '--no-progress']);
    assert.equal(resumed.status, 0, resumed.stderr);
    const whole = lorakit([...args, '--out', join(tmp, 'run-whole'), '--no-progress']);
    assert.equal(whole.status, 0, whole.stderr);
    assert.deepEqual(readFileSync(join(out, 'adapter', 'adapter_model.safetensors')), readFileSync(join(tmp, 'run-whole', 'adapter', 'adapter_model.safetensors')));
  });
});

describe('learned positions (GPT-2): --max-length within n_positions', () => {
  it('data check, train, eval and generate cut at the model\'s 32 positions instead of failing', async () => {
    const gpt2 = join(tmp, 'gpt2');
    writeByteLevelBpeTokenizer(gpt2, { extraWords: [' cat', ' sits', ' the'] });
    const tok = loadTokenizer(gpt2);
    await saveModel(createModel({ model_type: 'gpt2', vocab_size: tok.vocabSize, n_positions: 32, n_embd: 16, n_layer: 1, n_head: 2 }, { seed: 3 }), gpt2);
    const file = join(tmp, 'long.jsonl');
    // 40+ tokens: past the 32 positions
    writeJsonl(file, [{ text: 'the cat sits '.repeat(20) }, { text: 'the cat sits.' }]);
    const check = lorakit(['data', 'check', file, '--model', gpt2]);
    assert.equal(check.status, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /over max length 32: 1;/);
    const tr = lorakit(['train', '--model', gpt2, '--data', file, '--out', join(tmp, 'run-gpt2'), '--steps', '2', '--max-length', '2048', '--no-progress']);
    assert.equal(tr.status, 0, tr.stderr);
    assert.match(tr.stderr, /--max-length 2048 is more than the 32 positions of .*gpt2 \(n_positions\); using 32/);
    assert.match(tr.stdout, /1 cut at 32 tokens/);
    const ev = lorakit(['eval', '--model', gpt2, '--data', file]);
    assert.equal(ev.status, 0, ev.stderr);
    assert.match(ev.stdout, /\(1 examples cut at 32 tokens\)/);
    const gen = lorakit(['generate', '--model', gpt2, '--prompt', 'the cat sits the cat', '--max-tokens', '100']);
    assert.equal(gen.status, 0, gen.stderr);
    assert.match(gen.stderr, /\[prompt (\d+) tokens, (\d+) generated, .*finish: length\]/);
    const [, p, g] = /\[prompt (\d+) tokens, (\d+) generated/.exec(gen.stderr)!;
    assert.equal(Number(p) + Number(g), 32);
  });
});

describe('dropped examples and ids past the vocabulary are named', () => {
  it('data check names an example whose prompt fills --max-length; train says which lines it dropped', () => {
    const file = join(tmp, 'prompt-heavy.jsonl');
    writeJsonl(file, [
      { prompt: 'the red cat sits', completion: ' and the cat sits again.' },
      { prompt: 'the red cat sits and the cat sits again and the red cat sits and the cat sits again.', completion: ' again.' },
    ]);
    const check = lorakit(['data', 'check', file, '--model', model, '--max-length', '12']);
    assert.equal(check.status, 1, check.stdout);
    assert.match(check.stdout, new RegExp(`^${file}:2: nothing to train within maxLength 12: the prompt fills the first 12 of its \\d+ tokens; training drops this example$`, 'm'));
    assert.match(check.stdout, /^1 problem\(s\)$/m);
    const tr = lorakit(['train', '--model', model, '--data', file, '--out', join(tmp, 'run-dropped'), '--steps', '1', '--max-length', '12', '--no-progress']);
    assert.equal(tr.status, 0, tr.stderr);
    assert.match(tr.stdout, new RegExp(`1 dropped \\(nothing to train within --max-length: ${file}:2\\)`));
  });

  it('data check finds token ids past the model\'s vocabulary (a tokenizer that does not match the model)', () => {
    const small = join(tmp, 'small-vocab');
    mkdirSync(small);
    for (const f of readdirSync(model)) if (f !== 'model.safetensors') copyFileSync(join(model, f), join(small, f));
    const cfg = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(small, 'config.json'), JSON.stringify({ ...cfg, vocab_size: 260 }));
    const check = lorakit(['data', 'check', data.valid, '--model', small]);
    assert.equal(check.status, 1, check.stdout + check.stderr);
    assert.match(check.stdout, new RegExp(`^${data.valid}:1: token id \\d+ is outside the model's vocabulary of 260 \\(vocab_size\\): the tokenizer does not match the model$`, 'm'));
  });
});

describe('inspect on a folder that does not load', () => {
  it('describes it, then says why it does not load and exits 1', () => {
    const broken = join(tmp, 'model-missing-tensor');
    mkdirSync(broken);
    for (const f of readdirSync(model)) copyFileSync(join(model, f), join(broken, f));
    const tensors = new Map(readSafetensors(join(model, 'model.safetensors')).tensors);
    tensors.delete('model.norm.weight');
    writeSafetensorsSync(join(broken, 'model.safetensors'), tensors);
    const r = lorakit(['inspect', broken]);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /^parameters:/m);
    assert.match(r.stderr, new RegExp(`^lorakit: ${broken} does not load: missing tensor model\\.norm\\.weight$`, 'm'));
    assert.equal(lorakit(['inspect', model]).status, 0);
  });
});

describe('PiSSA adapters are written portable too', () => {
  it('train --init pissa writes adapter-lora/ (plain LoRA, rank 2r) that scores as the PiSSA adapter', () => {
    const out = join(tmp, 'run-pissa');
    const tr = lorakit(['train', '--model', model, '--data', data.train, '--out', out, '--steps', '3', '--rank', '4', '--init', 'pissa', '--no-progress']);
    assert.equal(tr.status, 0, tr.stderr);
    assert.match(tr.stdout, /plain LoRA on the original weights \(rank 8, portable: no SVD at load\)/);
    const cfg = JSON.parse(readFileSync(join(out, 'adapter-lora', 'adapter_config.json'), 'utf8')) as { r: number; init_lora_weights: unknown };
    assert.deepEqual([cfg.r, cfg.init_lora_weights], [8, true]);
    const loss = (adapter: string): number => {
      const r = lorakit(['eval', '--model', model, '--data', data.valid, '--adapter', adapter, '--json']);
      assert.equal(r.status, 0, r.stderr);
      return (JSON.parse(r.stdout) as { loss: number }).loss;
    };
    assert.ok(Math.abs(loss(join(out, 'adapter')) - loss(join(out, 'adapter-lora'))) < 1e-4);
  });
});
