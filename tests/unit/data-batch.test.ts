import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { BatchIterator, IGNORE_INDEX, attentionBias, collate, datasetFromJsonl, packRows, padIdFor, splitDataset, type Batch, type Dataset, type Example } from '../../src/data/index.js';
import { loadTrainValid } from '../../src/data/index.node.js';
import { CHATML_TEMPLATE, writeByteLevelBpeTokenizer, type WrittenTokenizer } from '../helpers/tokenizers.js';
import { loadTokenizer } from '../../src/io/tokenizer.node.js';
import { Rng } from '../../src/tensor/rng.js';

/** An example with ids 100·k + t and the given target mask (default: all). */
function ex(k: number, len: number, targets?: number[]): Example {
  return {
    ids: Int32Array.from({ length: len }, (_, t) => 100 * k + t),
    targetMask: Uint8Array.from(targets ?? Array.from({ length: len }, () => 1)),
    file: 'mem',
    line: k + 1,
    fullLength: len,
  };
}

const I = IGNORE_INDEX;
const NEG = -Infinity;

describe('collate (right padding)', () => {
  it('pads on the right with labels -100, mask 0 and shifted labels on real tokens', () => {
    const exs = [ex(1, 4, [0, 0, 1, 1]), ex(2, 2)];
    const b = collate(exs, [[0], [1]], { padId: 9 });
    assert.equal(b.B, 2);
    assert.equal(b.T, 4);
    assert.deepEqual([...b.inputs], [100, 101, 102, 103, 200, 201, 9, 9]);
    assert.deepEqual([...b.labels], [I, 102, 103, I, 201, I, I, I]);
    assert.deepEqual([...b.attentionMask], [1, 1, 1, 1, 1, 1, 0, 0]);
    assert.deepEqual([...b.positions], [0, 1, 2, 3, 0, 1, 2, 3]);
    assert.deepEqual([...b.segmentIds], [1, 1, 1, 1, 1, 1, 0, 0]);
    assert.equal(b.tokens, 6);
    assert.equal(b.targets, 3);
    assert.equal(b.packed, false);
  });
  it('rounds T up to padMultiple, or uses a fixed length', () => {
    const exs = [ex(1, 5), ex(2, 2)];
    assert.equal(collate(exs, [[0], [1]], { padMultiple: 4 }).T, 8);
    assert.equal(collate(exs, [[0], [1]], { length: 6 }).T, 6);
    assert.throws(() => collate(exs, [[0]], { length: 4 }), /length 4 is shorter than the longest row \(5 tokens\)/);
  });
  it('takes the pad id from the tokenizer, else 0', () => {
    assert.equal(padIdFor({ padTokenId: 7 }), 7);
    assert.equal(padIdFor({ padTokenId: undefined }), 0);
  });
});

describe('packing', () => {
  it('packs first-fit decreasing into rows of at most the capacity', () => {
    // lengths 5 3 4 2 2 1, capacity 6: 5→row0, 4→row1, 3→row2, 2→row1, 2→row2, 1→row0
    assert.deepEqual(packRows([5, 3, 4, 2, 2, 1], 6), [[0, 5], [2, 3], [1, 4]]);
    assert.throws(() => packRows([7], 6), /example 0 has 7 tokens, more than the row length 6/);
    // Every example exactly once, no row over capacity, on a larger random case.
    const rng = new Rng(3);
    const lengths = Array.from({ length: 500 }, () => 1 + rng.nextInt(64));
    const rows = packRows(lengths, 64);
    assert.deepEqual(rows.flat().sort((a, b) => a - b), lengths.map((_, i) => i));
    for (const r of rows) assert.ok(r.reduce((n, i) => n + lengths[i]!, 0) <= 64);
    // The same rows as a plain linear-scan first-fit decreasing.
    const naive: number[][] = [];
    const free: number[] = [];
    for (const i of lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b)) {
      const k = free.findIndex((f) => f >= lengths[i]!);
      if (k < 0) {
        naive.push([i]);
        free.push(64 - lengths[i]!);
      } else {
        naive[k]!.push(i);
        free[k]! -= lengths[i]!;
      }
    }
    assert.deepEqual(rows, naive);
    const total = lengths.reduce((a, b) => a + b, 0);
    assert.ok(rows.length <= Math.ceil((11 / 9) * Math.ceil(total / 64)) + 1, `${rows.length} rows for ${total} tokens`);
  });
  it('restarts positions per example, numbers segments, and never labels across a boundary', () => {
    const exs = [ex(1, 3, [0, 1, 1]), ex(2, 2), ex(3, 4)];
    const b = collate(exs, [[0, 1], [2]], { length: 6, packed: true });
    assert.equal(b.T, 6);
    assert.deepEqual([...b.inputs], [100, 101, 102, 200, 201, 0, 300, 301, 302, 303, 0, 0]);
    assert.deepEqual([...b.positions], [0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 4, 5]);
    assert.deepEqual([...b.segmentIds], [1, 1, 1, 2, 2, 0, 1, 1, 1, 1, 0, 0]);
    // 102 (last of example 1) must not predict 200 (first of example 2).
    assert.deepEqual([...b.labels], [101, 102, I, 201, I, I, 301, 302, 303, I, I, I]);
    assert.equal(b.targets, 6);
    assert.equal(b.packed, true);
  });
  it('builds an additive mask that is causal within each segment and -Infinity across', () => {
    const b = collate([ex(1, 2), ex(2, 2)], [[0, 1]], { length: 5, packed: true });
    const m = attentionBias(b);
    assert.equal(m.length, 1 * 5 * 5);
    const rows = Array.from({ length: 5 }, (_, t) => [...m.subarray(t * 5, t * 5 + 5)]);
    assert.deepEqual(rows, [
      [0, NEG, NEG, NEG, NEG],
      [0, 0, NEG, NEG, NEG],
      [NEG, NEG, 0, NEG, NEG],
      [NEG, NEG, 0, 0, NEG],
      [NEG, NEG, NEG, NEG, 0], // padding sees only itself
    ]);
  });
  it('gives the iterator full-length packed rows', () => {
    const exs = [ex(0, 3), ex(1, 5), ex(2, 2), ex(3, 4), ex(4, 1)];
    const it = new BatchIterator(exs, { batchSize: 2, pack: true, maxLength: 8, order: 'sequential' });
    assert.deepEqual(it.units, [[1, 0], [3, 2, 4]]);
    const b = it.next();
    assert.equal(b.T, 8);
    assert.equal(b.B, 2);
    assert.deepEqual(b.rows, [[1, 0], [3, 2, 4]]);
    assert.equal(b.tokens, 15);
    assert.throws(() => new BatchIterator(exs, { batchSize: 2, pack: true, maxLength: 4 }), /1 example\(s\) are longer than the packed row length 4 tokens: mem:2 \(5\); load the data with the same maxLength/);
  });
});

function orderOf(it: BatchIterator, n: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < n; i++) out.push(it.next().rows.map((r) => r[0]!));
  return out;
}

describe('BatchIterator', () => {
  const exs = Array.from({ length: 10 }, (_, k) => ex(k, 1 + ((k * 7) % 10)));
  it('shuffles reproducibly from the seed, a new permutation each epoch', () => {
    const a = new BatchIterator(exs, { batchSize: 3, seed: 42 });
    const b = new BatchIterator(exs, { batchSize: 3, seed: 42 });
    const c = new BatchIterator(exs, { batchSize: 3, seed: 43 });
    assert.equal(a.batchesPerEpoch, 4);
    const oa = orderOf(a, 8);
    assert.deepEqual(orderOf(b, 8), oa);
    assert.notDeepEqual(orderOf(c, 8), oa);
    const e0 = oa.slice(0, 4).flat();
    const e1 = oa.slice(4, 8).flat();
    assert.deepEqual([...e0].sort((x, y) => x - y), exs.map((_, i) => i));
    assert.deepEqual([...e1].sort((x, y) => x - y), exs.map((_, i) => i));
    assert.notDeepEqual(e0, e1);
    assert.deepEqual(oa.map((r) => r.length), [3, 3, 3, 1, 3, 3, 3, 1]);
  });
  it('resumes mid-epoch from state() with the same batches', () => {
    const a = new BatchIterator(exs, { batchSize: 3, seed: 5 });
    orderOf(a, 6); // one epoch and two batches in
    const saved = JSON.parse(JSON.stringify(a.state()));
    assert.deepEqual(saved, { seed: 5, epoch: 1, batch: 2, units: 10 });
    const rest = orderOf(a, 7);
    const b = new BatchIterator(exs, { batchSize: 3, seed: 5 });
    b.setState(saved);
    assert.deepEqual(orderOf(b, 7), rest);
    // The batch contents match too, not only the order.
    const c = new BatchIterator(exs, { batchSize: 3, seed: 5 });
    c.setState(saved);
    const x: Batch = c.next();
    const y = new BatchIterator(exs, { batchSize: 3, seed: 5 }).batchAt(1, 2);
    assert.deepEqual(x, y);
  });
  it('refuses a state from another seed or dataset, or outside an epoch', () => {
    const a = new BatchIterator(exs, { batchSize: 3, seed: 5 });
    assert.throws(() => a.setState({ seed: 6, epoch: 0, batch: 0, units: 10 }), /state is for seed 6 and 10 rows, this iterator has seed 5 and 10 rows/);
    assert.throws(() => a.setState({ seed: 5, epoch: 0, batch: 0, units: 9 }), /9 rows/);
    assert.throws(() => a.setState({ seed: 5, epoch: 0, batch: 4, units: 10 }), /batch 4 is not a position \(an epoch has 4 batches\)/);
  });
  it('sorted order: batches of similar length, in a seeded random order', () => {
    const a = new BatchIterator(exs, { batchSize: 3, order: 'sorted', seed: 1 });
    const lengths = exs.map((e) => e.ids.length);
    const epoch = a.epochBatches(0).map((b) => b.map((u) => lengths[u]!));
    // Sorted lengths 1..10 cut into [1,2,3] [4,5,6] [7,8,9] [10], in some order.
    assert.deepEqual(
      [...epoch].sort((x, y) => x[0]! - y[0]!),
      [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]],
    );
    const orders = new Set([0, 1, 2, 3, 4, 5].map((e) => JSON.stringify(a.epochBatches(e))));
    assert.ok(orders.size > 1, 'batch order should change between epochs');
    const b = new BatchIterator(exs, { batchSize: 3, order: 'sorted', seed: 1 });
    assert.deepEqual(b.epochBatches(3), a.epochBatches(3));
  });
  it('sorted order with dropLast leaves out different examples in different epochs', () => {
    const a = new BatchIterator(exs, { batchSize: 4, order: 'sorted', dropLast: true, seed: 2 });
    assert.equal(a.batchesPerEpoch, 2);
    const seen = new Set<number>();
    for (let e = 0; e < 20; e++) {
      const batches = a.epochBatches(e);
      assert.equal(batches.length, 2);
      for (const b of batches) {
        assert.equal(b.length, 4);
        b.forEach((u) => seen.add(u));
      }
    }
    assert.equal(seen.size, 10);
  });
  it('sequential order, dropLast and the epoch generator', () => {
    const a = new BatchIterator(exs, { batchSize: 4, order: 'sequential', dropLast: true });
    assert.equal(a.batchesPerEpoch, 2);
    assert.deepEqual([...a.epochIterator(0)].map((b) => b.rows.flat()), [[0, 1, 2, 3], [4, 5, 6, 7]]);
    assert.deepEqual(a.state(), { seed: 0, epoch: 0, batch: 0, units: 10 });
    assert.throws(() => new BatchIterator(exs.slice(0, 3), { batchSize: 4, dropLast: true }), /3 rows make no full batch of 4/);
    assert.throws(() => new BatchIterator(exs, { batchSize: 0, seed: -1 }), /batchSize must be a positive integer, got 0; seed must be a non-negative integer, got -1/);
  });
});

describe('Rng (data order)', () => {
  it('replays its stream after setState and gives uniform permutations', () => {
    const r = new Rng(9);
    for (let i = 0; i < 5; i++) r.nextU32();
    const st = r.state();
    const a = Array.from({ length: 8 }, () => r.nextU32());
    const s = new Rng(1);
    s.setState(st);
    assert.deepEqual(Array.from({ length: 8 }, () => s.nextU32()), a);
    assert.throws(() => s.setState([1, 2, 3]), /expected four uint32 words/);
    // Position of element 0 after shuffling 4 items: each of 4 places about 1/4 of the time.
    const counts = [0, 0, 0, 0];
    const g = new Rng(2);
    for (let i = 0; i < 8000; i++) counts[g.permutation(4).indexOf(0)]!++;
    for (const c of counts) assert.ok(Math.abs(c - 2000) < 200, `counts ${counts}`);
  });
});

describe('validation split and train/valid loading', () => {
  let tmp: string;
  let w: WrittenTokenizer;
  let tok: Tokenizer;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-data-split-'));
    w = writeByteLevelBpeTokenizer(path.join(tmp, 'tok'), { specialTokens: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'], chatTemplate: CHATML_TEMPLATE });
    tok = loadTokenizer(w.dir);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const text = Array.from({ length: 20 }, (_, i) => JSON.stringify({ text: `line ${i}` })).join('\n');

  it('holds out round(fraction·n) examples, deterministically with the seed', () => {
    const ds: Dataset = datasetFromJsonl(text, 'mem.jsonl', tok);
    const a = splitDataset(ds, 0.1, 7);
    const b = splitDataset(ds, 0.1, 7);
    const c = splitDataset(ds, 0.1, 8);
    assert.equal(a.valid.examples.length, 2);
    assert.equal(a.train.examples.length, 18);
    assert.deepEqual(a.valid.examples.map((e) => e.line), b.valid.examples.map((e) => e.line));
    assert.notDeepEqual(a.valid.examples.map((e) => e.line), c.valid.examples.map((e) => e.line));
    const all = [...a.train.examples, ...a.valid.examples].map((e) => e.line).sort((x, y) => x - y);
    assert.deepEqual(all, Array.from({ length: 20 }, (_, i) => i + 1));
    // Both parts keep file order.
    const lines = a.train.examples.map((e) => e.line);
    assert.deepEqual(lines, [...lines].sort((x, y) => x - y));
    assert.throws(() => splitDataset(ds, 1), /fraction must be in \(0, 1\)/);
  });
  it('loads a validation file, or splits one off, but not both', async () => {
    const train = path.join(tmp, 'train.jsonl');
    const valid = path.join(tmp, 'valid.jsonl');
    fs.writeFileSync(train, text);
    fs.writeFileSync(valid, '{"text": "v"}\n');
    const withFile = await loadTrainValid(train, tok, { valid });
    assert.equal(withFile.valid!.examples.length, 1);
    assert.equal(withFile.valid!.file, valid);
    const split = await loadTrainValid(train, tok, { validSplit: 0.25, seed: 3 });
    assert.equal(split.valid!.examples.length, 5);
    assert.deepEqual(split.valid!.examples.map((e) => e.line), splitDataset(datasetFromJsonl(text, train, tok), 0.25, 3).valid.examples.map((e) => e.line));
    assert.equal((await loadTrainValid(train, tok)).valid, null);
    await assert.rejects(loadTrainValid(train, tok, { valid, validSplit: 0.1 }), /either a validation file or validSplit, not both/);
  });
  it('runs a chat file end to end into a batch', () => {
    const chat = [
      { messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }] },
      { messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: ' world the' }] },
    ]
      .map((o) => JSON.stringify(o))
      .join('\n');
    const ds = datasetFromJsonl(chat, 'chat.jsonl', tok);
    const it = new BatchIterator(ds.examples, { batchSize: 2, order: 'sequential', padId: padIdFor(tok) });
    const b = it.next();
    const ims = w.id('<|im_start|>');
    const ime = w.id('<|im_end|>');
    const row = (r: number): number[] => [...b.labels.subarray(r * b.T, (r + 1) * b.T)].filter((l) => l !== I);
    assert.deepEqual(row(0), [w.id('Hello'), ime, 10]);
    assert.deepEqual(row(1), [w.id('Ġworld'), w.id('Ġthe'), ime, 10]);
    assert.equal(b.inputs[0], ims);
    assert.equal(b.targets, 7);
  });
});
