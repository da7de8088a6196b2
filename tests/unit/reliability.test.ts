// The library side of issue 25's fixes, each fed its bad input: non-finite values read from
// half storage, the run folder's torn metrics and kill leftovers, output folders by real path,
// a stop request in the training loop (docs/ARCHITECTURE.md §Files written and signals).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { recoverAtomicWrites, writeDirAtomic, writeFileAtomic, writeFileAtomicSync, type FileData } from '../../src/io/atomic.node.js';
import { checkOutputFolder, realPathOf } from '../../src/io/paths.node.js';
import { LoraLinear } from '../../src/lora/lora-linear.js';
import { getPeftModel } from '../../src/lora/peft-model.js';
import { loadPeftModel, saveAdapter } from '../../src/lora/files.node.js';
import { Rng } from '../../src/tensor/rng.js';
import { createModel, modelFolderContents, weightProblems } from '../../src/models/load.js';
import { Linear } from '../../src/nn/linear.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { createOptimizer } from '../../src/train/optimizer.js';
import { createProgress } from '../../src/train/progress.node.js';
import { metricsRowsUpTo, train } from '../../src/train/trainer.node.js';
import { datasetFromJsonl } from '../../src/data/dataset.js';
import { loadTokenizer } from '../../src/io/tokenizer.node.js';
import { tmpDir } from '../helpers/io-tmp.js';
import { writeByteLevelBpeTokenizer } from '../helpers/tokenizers.js';
import { batches, makeFixture } from '../helpers/train-fixture.js';

const deadPid = (): number => spawnSync(process.execPath, ['-e', '0']).pid!;

describe('non-finite values are read from the stored bits', () => {
  it('f32, f16 and bf16: NaN, ±Inf, and finite values past the half range after a cast', () => {
    assert.equal(Tensor.fromValues([1, NaN, Infinity, -Infinity, 3], [5]).nonFiniteCount(), 3);
    assert.equal(Tensor.fromValues([1, 65504, -65504], [3], 'f16').nonFiniteCount(), 0);
    assert.equal(Tensor.fromValues([1, 70000, -1e6, NaN], [4], 'f16').nonFiniteCount(), 3);
    assert.equal(Tensor.fromValues([1, 1e38, NaN], [3], 'bf16').nonFiniteCount(), 1);
    assert.equal(Tensor.fromValues([3.4e38], [1], 'bf16').nonFiniteCount(), 1); // rounds up past bf16's max
  });

  it('modelFolderContents refuses a cast that overflows, naming the tensor', () => {
    const state = new Map([
      ['a.weight', Tensor.fromValues([1, 2, 3], [3])],
      ['b.weight', Tensor.fromValues([1, 1e5, 3], [3])],
    ]);
    assert.throws(() => modelFolderContents(state, { model_type: 'llama' }, null, { dtype: 'f16' }), /b\.weight: 1 NaN\/Inf value\(s\) after the cast from f32 to f16/);
    assert.equal(modelFolderContents(state, { model_type: 'llama' }, null, { dtype: 'bf16' }).tensors.size, 2);
  });

  it('safe merge into an f16 layer checks the f16 result and leaves the weights unchanged', () => {
    const base = new Linear(4, 2, { bias: false, dtype: 'f16' });
    base.weight.value = Tensor.fromValues([1, 2, 3, 4, 5, 6, 7, 8], [2, 4], 'f16');
    const before = Array.from(base.weight.value.data);
    const lin = new LoraLinear(base, { path: 'm.q' });
    const a = lin.addAdapter('default', { r: 1, alpha: 1 });
    lin.setActive(['default']);
    a.A.data.fill(300);
    a.B.data.fill(300); // 9e4 > 65504: finite in f32, Inf in f16
    assert.throws(() => lin.merge({ safeMerge: true }), /module m\.q \(the sum is finite in f32 but exceeds the f16 range when stored as f16\); the weights were left unchanged/);
    assert.deepEqual(Array.from(base.weight.value.data), before);
    a.B.data.fill(0.001);
    lin.merge({ safeMerge: true });
    assert.equal(base.weight.value.nonFiniteCount(), 0);
  });
});

describe('run folder recovery', () => {
  it('a torn last metrics line is dropped; a bad line in the middle names file and line', () => {
    const dir = tmpDir();
    const f = join(dir, 'metrics.jsonl');
    writeFileSync(f, '{"type":"train","step":1}\n{"type":"train","step":2}\n{"type":"train","st');
    const logged: string[] = [];
    assert.deepEqual(metricsRowsUpTo(f, 5, (l) => logged.push(l)), ['{"type":"train","step":1}', '{"type":"train","step":2}']);
    assert.match(logged[0]!, /metrics\.jsonl:3: dropped a torn last line/);
    writeFileSync(f, '{"type":"train","step":1}\n{"type":"tr\n{"type":"train","step":3}\n');
    assert.throws(() => metricsRowsUpTo(f, 5), new RegExp(`resume: ${f}:2 is not a JSON row`));
  });

  it('recoverAtomicWrites completes a replacement cut between its renames and removes other leftovers of dead processes', () => {
    const dir = tmpDir();
    const pid = deadPid();
    // killed between the renames: the old "best" aside, the complete new one not yet in place
    mkdirSync(join(dir, `.best.old-${pid}-aaaaaaaaaaaa`));
    mkdirSync(join(dir, `.best.new-${pid}-bbbbbbbbbbbb`));
    writeFileSync(join(dir, `.best.new-${pid}-bbbbbbbbbbbb`, 'x'), 'new');
    // killed while writing a checkpoint, and a temp file
    mkdirSync(join(dir, `.step-0000004.new-${pid}-cccccccccccc`));
    writeFileSync(join(dir, `.metrics.jsonl.tmp-${pid}-dddddddddddd`), 'half');
    // a write of this (live) process is left alone
    mkdirSync(join(dir, `.step-0000008.new-${process.pid}-eeeeeeeeeeee`));
    const done = recoverAtomicWrites(dir);
    assert.equal(done.length, 4, done.join('\n'));
    assert.equal(readFileSync(join(dir, 'best', 'x'), 'utf8'), 'new');
    assert.deepEqual(readdirSync(dir).sort(), [`.step-0000008.new-${process.pid}-eeeeeeeeeeee`, 'best']);
  });
});

describe('output folders by real path', () => {
  it('a symlink, a .. path and a not-yet-existing folder under a symlinked parent', () => {
    const dir = tmpDir();
    mkdirSync(join(dir, 'base'));
    symlinkSync(join(dir, 'base'), join(dir, 'link'));
    symlinkSync(dir, join(dir, 'parent-link'));
    assert.equal(realPathOf(join(dir, 'parent-link', 'base', 'new', 'deeper')), join(realPathOf(dir), 'base', 'new', 'deeper'));
    assert.throws(() => checkOutputFolder('--out', join(dir, 'link'), [{ flag: '--model', path: join(dir, 'base') }]), /--out .*link is the --model folder \(both are .*base\)/);
    assert.throws(() => checkOutputFolder('--out', join(dir, 'base'), [{ flag: '--model', path: join(dir, 'parent-link', 'base') }]), /is the --model folder/);
    checkOutputFolder('--out', join(dir, 'link', 'merged'), [{ flag: '--model', path: join(dir, 'base') }]);
  });
});

describe('a stop request in the training loop', () => {
  it('stops after the step under way, writes its checkpoint, and a resume ends bit-identical', async () => {
    const run = async (out: string, stopAfter: number | null, resume?: string): Promise<Awaited<ReturnType<typeof train>>> => {
      const fx = makeFixture(join(out, 'fixture'));
      const stop = { aborted: false };
      return train({
        model: fx.model,
        optimizer: createOptimizer(fx.model.trainableParameters(), { lr: 5e-3 }),
        data: { train: batches(fx.train, 4, 7) },
        args: { steps: 10, lr: 5e-3, schedule: 'cosine', outDir: join(out, 'run'), progress: false, ...(resume ? { resume } : {}) },
        callbacks: { onStep: (row) => void (stopAfter !== null && row.step === stopAfter && (stop.aborted = true)) },
        stop,
      });
    };
    const dir = tmpDir();
    const a = await run(join(dir, 'a'), 4);
    assert.equal(a.interrupted, true);
    assert.equal(a.steps, 4);
    assert.deepEqual(readdirSync(join(dir, 'a', 'run', 'checkpoints')), ['step-0000004']);
    const b = await run(join(dir, 'a'), null, join(dir, 'a', 'run'));
    assert.equal(b.interrupted, false);
    await run(join(dir, 'whole'), null);
    const final = (d: string): Buffer => readFileSync(join(d, 'run', 'checkpoints', 'step-0000010', 'trainable.safetensors'));
    assert.deepEqual(final(join(dir, 'a')), final(join(dir, 'whole')));
  });
});

/** A tiny terminal: enough of VT100 for cli-progress (CR, LF, ESC 7/8, CSI G, CSI K) to see what stays on screen. */
class Screen {
  rows: string[][] = [[]];
  row = 0;
  col = 0;
  saved = { row: 0, col: 0 };
  readonly isTTY = true;
  readonly columns = 100;
  write(s: string): boolean {
    for (let i = 0; i < s.length; i++) {
      const c = s[i]!;
      if (c === '\r') this.col = 0;
      else if (c === '\n') {
        this.row++;
        this.col = 0;
      } else if (c === '\x1b') {
        const n = s[i + 1];
        if (n === '7') this.saved = { row: this.row, col: this.col };
        else if (n === '8') ({ row: this.row, col: this.col } = this.saved);
        if (n === '7' || n === '8') {
          i++;
          continue;
        }
        const m = /^\[(\??)([\d;]*)([A-Za-z])/.exec(s.slice(i + 1))!;
        i += m[0].length;
        const arg = Number(m[2] || '0');
        if (m[3] === 'G') this.col = Math.max(0, arg - 1);
        else if (m[3] === 'K') {
          const line = this.line();
          if (arg === 2) line.length = 0;
          else if (arg === 0) line.length = Math.min(line.length, this.col);
        }
      } else {
        this.line()[this.col++] = c;
      }
    }
    return true;
  }
  private line(): string[] {
    while (this.rows.length <= this.row) this.rows.push([]);
    return this.rows[this.row]!;
  }
  text(): string[] {
    return this.rows.map((r) => Array.from(r, (c) => c ?? ' ').join('').trimEnd());
  }
  on(): this {
    return this;
  }
  removeListener(): this {
    return this;
  }
}

describe('the progress bar keeps the lines printed while it ran', () => {
  it('validation lines logged during the run are still on screen after the final bar and the summary', () => {
    const screen = new Screen();
    const p = createProgress(4, { stream: screen as unknown as NodeJS.WriteStream });
    p.update({ step: 1, totalSteps: 4, loss: 2, lr: 1e-3, tokensPerSecond: 10 });
    p.log('step 2: validation loss 1.5000, perplexity 4.48');
    p.update({ step: 3, totalSteps: 4, loss: 1.5, lr: 1e-3, tokensPerSecond: 10 });
    p.log('step 4: validation loss 1.2500, perplexity 3.49');
    p.update({ step: 4, totalSteps: 4, loss: 1.2, lr: 1e-3, tokensPerSecond: 10 });
    p.stop();
    screen.write('done: 4 steps\n');
    const text = screen.text().filter((l) => l);
    assert.equal(text[0], 'step 2: validation loss 1.5000, perplexity 4.48', text.join('\n'));
    assert.equal(text[1], 'step 4: validation loss 1.2500, perplexity 3.49', text.join('\n'));
    assert.match(text[2]!, /step 4\/4/);
    assert.equal(text[3], 'done: 4 steps');
  });
});

describe('write errors name the file', () => {
  it('a full disk (ENOSPC) during an atomic write names the file, and nothing is left behind', async () => {
    const dir = tmpDir();
    const target = join(dir, 'adapter_model.safetensors');
    writeFileSync(target, 'old');
    // what the file system throws when the disk fills mid-write: an errno error that names no file
    function* full(): Generator<Uint8Array> {
      yield new Uint8Array(1024);
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
    }
    await assert.rejects(writeFileAtomic(target, full()), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC' && e.message === `ENOSPC: no space left on device, write (writing ${target})`);
    assert.throws(() => writeFileAtomicSync(target, full()), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC' && e.message.endsWith(`(writing ${target})`));
    await assert.rejects(writeDirAtomic(join(dir, 'ckpt'), new Map<string, FileData>([['a.bin', 'x'], ['b.bin', full()]])), (e: Error) => e.message.endsWith(`(writing ${join(dir, 'ckpt', 'b.bin')})`));
    assert.equal(readFileSync(target, 'utf8'), 'old');
    assert.deepEqual(readdirSync(dir), ['adapter_model.safetensors']);
  });
});

describe('inspect says when a folder does not load', () => {
  it('weightProblems: missing, unexpected and mis-sized tensors from the headers alone', () => {
    const config = { model_type: 'llama', vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 32 };
    const model = createModel(config);
    const infos = new Map([...model.stateDict()].map(([k, t]) => [k, { dtype: 'F32' as const, shape: t.shape }]));
    const src = (m: Map<string, { dtype: 'F32' | 'I64'; shape: readonly number[] }>) => ({ names: () => m.keys(), info: (n: string) => m.get(n)! });
    assert.deepEqual(weightProblems(config, src(infos), 'config.json'), []);
    const broken = new Map<string, { dtype: 'F32' | 'I64'; shape: readonly number[] }>(infos);
    broken.delete('model.norm.weight');
    broken.set('model.layers.0.mlp.up_proj.weight', { dtype: 'F32', shape: [16, 4] });
    broken.set('model.layers.0.mlp.down_proj.weight', { dtype: 'I64', shape: [8, 16] });
    broken.set('extra.weight', { dtype: 'F32', shape: [2] });
    assert.deepEqual(weightProblems(config, src(broken), 'config.json').sort(), [
      'missing tensor model.norm.weight',
      'tensor model.layers.0.mlp.down_proj.weight has dtype I64; expected F32, F16 or BF16',
      'tensor model.layers.0.mlp.up_proj.weight has shape [16, 4] (64 values); the model expects 128',
      'unexpected tensor extra.weight',
    ]);
  });
});

describe('PiSSA adapters saved as a plain LoRA (portable)', () => {
  it('pissaAsLora: on the original base, the rank-2r LoRA gives the PiSSA model\'s logits; no SVD at load', () => {
    const config = { model_type: 'llama', vocab_size: 32, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 32 };
    const peft = getPeftModel(createModel(config, { seed: 5 }), { r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj', 'down_proj'], init_lora_weights: 'pissa' });
    // "training": move A and B off their PiSSA start
    const rng = new Rng(3);
    for (const [, p] of peft.trainableParameters()) for (let i = 0; i < p.data.length; i++) p.data[i] = p.data[i]! + 0.05 * rng.normal();
    const ids = Int32Array.from({ length: 12 }, (_, i) => (i * 7) % 32);
    const pos = Int32Array.from({ length: 12 }, (_, i) => i % 6);
    const want = peft.model.forward(ids, 2, 6, { positionIds: pos }).slice();
    const dir = tmpDir();
    saveAdapter(peft, join(dir, 'pissa'));
    saveAdapter(peft, join(dir, 'lora'), { pissaAsLora: true });
    const cfg = JSON.parse(readFileSync(join(dir, 'lora', 'adapter_config.json'), 'utf8')) as { r: number; lora_alpha: number; init_lora_weights: unknown };
    assert.deepEqual([cfg.r, cfg.lora_alpha, cfg.init_lora_weights], [8, 16, true]);
    // the original base (createModel with the same seed), the converted adapter: the same logits
    const fresh = loadPeftModel(createModel(config, { seed: 5 }), join(dir, 'lora'));
    const got = fresh.model.forward(ids, 2, 6, { positionIds: pos });
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    assert.ok(worst < 1e-4, `logits differ by ${worst}`);
    // merged into the original weights too
    fresh.mergeAndUnload({ safeMerge: true });
    const merged = fresh.model.forward(ids, 2, 6, { positionIds: pos });
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(merged[i]! - want[i]!));
    assert.ok(worst < 1e-4, `merged logits differ by ${worst}`);
  });
});

describe('a huge JSONL line costs what its first tokens cost', () => {
  it('the loader encodes a prefix of a 300 KB text or completion, and keeps exactly the whole text\'s first tokens', () => {
    const dir = tmpDir();
    writeByteLevelBpeTokenizer(dir, { extraWords: [' cat', ' sits', ' the', ' dog', ' runs'] });
    const tok = loadTokenizer(dir);
    let seen = 0;
    const counting = new Proxy(tok, {
      get(t, k) {
        if (k === 'encode') return (text: string, o?: { addSpecialTokens?: boolean }) => ((seen += text.length), t.encode(text, o));
        const v = Reflect.get(t, k, t) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
    const words = ['the', 'cat', 'sits', 'dog', 'runs', 'and', 'then', 'a'];
    let huge = '';
    for (let i = 0; huge.length < 300_000; i++) huge += words[(i * 7 + (i >> 3)) % words.length] + (i % 11 === 10 ? '. ' : ' ');
    const ds = datasetFromJsonl(JSON.stringify({ text: huge }) + '\n', 'huge.jsonl', counting, { maxLength: 64 });
    const dc = datasetFromJsonl(JSON.stringify({ prompt: 'the cat', completion: huge }) + '\n', 'huge-completion.jsonl', counting, { maxLength: 64 });
    assert.ok(seen < huge.length / 20, `the tokenizer saw ${seen} characters of two ${huge.length}-character lines`);
    const whole = tok.encode(huge, { addSpecialTokens: true });
    assert.deepEqual(Array.from(ds.examples[0]!.ids), whole.slice(0, 64));
    const p = tok.encode('the cat', { addSpecialTokens: true });
    const c = tok.encode(huge, { addSpecialTokens: false });
    assert.deepEqual(Array.from(dc.examples[0]!.ids), [...p, ...c].slice(0, 64));
    assert.equal(ds.truncated + dc.truncated, 2);
  });
});
