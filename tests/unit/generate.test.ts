// Generation: sampling semantics, seeded sampling, stop tokens and strings, dropping finished
// rows, streaming, and cache vs full recompute.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import {
  applyRepetitionPenalty,
  argmax,
  filterTopKTopP,
  generate,
  generateSteps,
  sampleToken,
  streamGenerate,
  type TokenEvent,
} from '../../src/generate/index.js';
import { createModel } from '../../src/models/index.js';
import { Rng } from '../../src/tensor/rng.js';
import { writeByteLevelBpeTokenizer } from '../helpers/tokenizers.js';
import { loadTokenizer } from '../../src/io/tokenizer.node.js';

const TINY = {
  model_type: 'llama',
  vocab_size: 40,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 128,
  initializer_range: 0.5,
};

describe('sampling', () => {
  it('repetition penalty divides positive logits and multiplies negative ones, once per token', () => {
    const l = Float32Array.from([2, -2, 3, 1]);
    applyRepetitionPenalty(l, [0, 1, 1, 0, 3], 2);
    assert.deepEqual([...l], [1, -4, 3, 0.5]);
  });
  it('argmax takes the first of equal maxima', () => {
    assert.equal(argmax(Float32Array.from([1, 5, 5, 2])), 1);
  });
  it('top-k keeps ties at the k-th value; top-p keeps the smallest nucleus reaching p', () => {
    const a = Float32Array.from([1, 3, 3, 0, 2]);
    filterTopKTopP(a, 2, 1);
    assert.deepEqual([...a], [-Infinity, 3, 3, -Infinity, -Infinity]);
    const p = Float32Array.from([0.5, 0.3, 0.15, 0.05].map(Math.log));
    filterTopKTopP(p, 0, 0.8);
    assert.deepEqual([...p].map((v) => v !== -Infinity), [true, true, false, false]);
    const q = Float32Array.from([0.5, 0.3, 0.15, 0.05].map(Math.log));
    filterTopKTopP(q, 0, 0.81);
    assert.deepEqual([...q].map((v) => v !== -Infinity), [true, true, true, false]);
  });
  it('samples with the softmax probabilities (temperature applied)', () => {
    const rng = new Rng(42);
    const probs = [0.5, 0.3, 0.2];
    const counts = [0, 0, 0];
    const n = 20000;
    for (let i = 0; i < n; i++) {
      // logits scaled by 2 with temperature 2 give the same distribution
      const l = Float32Array.from(probs.map((p) => 2 * Math.log(p)));
      counts[sampleToken(l, [], { temperature: 2 }, rng)]!++;
    }
    probs.forEach((p, i) => assert.ok(Math.abs(counts[i]! / n - p) < 0.015, `token ${i}: ${counts[i]! / n} vs ${p}`));
  });
  it('temperature 0 is greedy (after the repetition penalty)', () => {
    assert.equal(sampleToken(Float32Array.from([0, 4, 1]), [], { temperature: 0 }, new Rng(1)), 1);
    assert.equal(sampleToken(Float32Array.from([0, 4, 3]), [1], { repetitionPenalty: 2 }, new Rng(1)), 2);
    assert.equal(sampleToken(Float32Array.from([0, 4, 3.9]), [], { temperature: 5, doSample: false }, new Rng(1)), 1);
  });
});

describe('generate', () => {
  const model = createModel(TINY, { seed: 21 });
  const prompts = [[1, 5, 9], [2, 7, 11, 13, 17, 3], [4]];

  it('greedy: batched equals unbatched, with and without the cache', () => {
    const single = prompts.map((p) => generate(model, [p], { maxNewTokens: 12, stopTokenIds: [] })[0]!.tokens);
    for (const useCache of [true, false]) {
      const res = generate(model, prompts, { maxNewTokens: 12, stopTokenIds: [], useCache });
      res.forEach((r, i) => {
        assert.deepEqual(r.tokens, single[i], `row ${i}, useCache ${useCache}`);
        assert.equal(r.finishReason, 'length');
      });
    }
  });

  it('seeded sampling is reproducible, differs across seeds, and the cache does not change it', () => {
    const opts = { maxNewTokens: 16, stopTokenIds: [], temperature: 1.5, topK: 20, topP: 0.95, repetitionPenalty: 1.2 };
    const a = generate(model, prompts, { ...opts, seed: 5 });
    const b = generate(model, prompts, { ...opts, seed: 5 });
    const c = generate(model, prompts, { ...opts, seed: 6 });
    const d = generate(model, prompts, { ...opts, seed: 5, useCache: false });
    assert.deepEqual(a, b);
    assert.deepEqual(a, d);
    assert.notDeepEqual(a.map((r) => r.tokens), c.map((r) => r.tokens));
  });

  it('a stop token ends its row (included); the other rows go on unchanged', () => {
    const free = generate(model, prompts, { maxNewTokens: 12, stopTokenIds: [] });
    // a token row 1 produces at step 3 that rows 0 and 2 never produce before their end
    const stop = free[1]!.tokens[3]!;
    const firstAt = free[1]!.tokens.indexOf(stop);
    const res = generate(model, prompts, { maxNewTokens: 12, stopTokenIds: [stop] });
    assert.deepEqual(res[1]!.tokens, free[1]!.tokens.slice(0, firstAt + 1));
    assert.equal(res[1]!.finishReason, 'stop_token');
    for (const i of [0, 2]) {
      const at = free[i]!.tokens.indexOf(stop);
      const want = at >= 0 ? free[i]!.tokens.slice(0, at + 1) : free[i]!.tokens;
      assert.deepEqual(res[i]!.tokens, want, `row ${i}`);
    }
  });

  it('events stream in order, rows drop out when finished, onToken sees the same events', () => {
    const seen: TokenEvent[] = [];
    const it = generateSteps(model, prompts, { maxNewTokens: 5, stopTokenIds: [], onToken: (e) => seen.push(e) });
    const events: TokenEvent[] = [];
    let r = it.next();
    while (!r.done) {
      events.push(r.value);
      r = it.next();
    }
    assert.deepEqual(seen, events);
    assert.equal(events.length, 15);
    // step-major order: each step has one event per row still running
    assert.deepEqual(events.slice(0, 3).map((e) => e.row), [0, 1, 2]);
    prompts.forEach((_, i) => assert.deepEqual(events.filter((e) => e.row === i).map((e) => e.token), r.value[i]!.tokens));
    assert.deepEqual(events.filter((e) => e.finishReason).map((e) => e.row), [0, 1, 2]);
  });

  it('streamGenerate yields the same tokens asynchronously', async () => {
    const want = generate(model, prompts, { maxNewTokens: 6, stopTokenIds: [] });
    const s = streamGenerate(model, prompts, { maxNewTokens: 6, stopTokenIds: [] });
    const got: number[][] = prompts.map(() => []);
    for await (const e of s) got[e.row]!.push(e.token);
    assert.deepEqual(got, want.map((r) => r.tokens));
    assert.deepEqual(await s.result, want);
  });

  it('breaking out of a stream ends generation and restores training mode', async () => {
    model.train();
    const s = streamGenerate(model, prompts, { maxNewTokens: 50, stopTokenIds: [] });
    let n = 0;
    for await (const e of s) {
      void e;
      if (++n === 4) break;
    }
    assert.equal(model.training, true);
    await assert.rejects(s.result, /closed before generation finished/);
    model.eval();
  });

  it('rejects bad prompts and options', () => {
    assert.throws(() => generate(model, [[]]), /prompt 0 is empty/);
    assert.throws(() => generate(model, [[1, 40]]), /prompt 0 token 1 is 40, outside the vocabulary 0..39/);
    assert.throws(() => generate(model, [[1]], { topP: 1.5 }), /topP must be in \(0, 1\]/);
    assert.throws(() => generate(model, [[1]], { stopStrings: ['x'] }), /stopStrings need a tokenizer/);
    assert.deepEqual(generate(model, [[1]], { maxNewTokens: 0 }), [{ tokens: [], text: '', finishReason: 'length' }]);
  });
});

describe('generate with a tokenizer', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-gen-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const written = writeByteLevelBpeTokenizer(dir, { extraWords: [' a', ' b', ' cat', ' dog', '.'] });
  const tok = loadTokenizer(dir);
  const V = tok.vocabSize;
  const model = createModel({ ...TINY, vocab_size: V }, { seed: 3 });
  // prompts of ASCII tokens; the model's text may contain any bytes
  const prompts = [tok.encode('Hello world'), tok.encode(' the cat')];
  const eos = written.id('<|endoftext|>');

  it('streams text that adds up to the decoded tokens', () => {
    const texts = prompts.map(() => '');
    const res = generate(model, prompts, { maxNewTokens: 15, tokenizer: tok, stopTokenIds: [], onToken: (e) => (texts[e.row] += e.text) });
    res.forEach((r, i) => {
      assert.equal(r.text, tok.decode(r.tokens, { skipSpecialTokens: true }));
      assert.equal(texts[i], r.text);
    });
  });

  it('the tokenizer EOS stops a row by default', () => {
    const free = generate(model, prompts, { maxNewTokens: 15, tokenizer: tok, stopTokenIds: [] });
    const res = generate(model, prompts, { maxNewTokens: 15, tokenizer: tok });
    res.forEach((r, i) => {
      const at = free[i]!.tokens.indexOf(eos);
      assert.deepEqual(r.tokens, at >= 0 ? free[i]!.tokens.slice(0, at + 1) : free[i]!.tokens);
    });
  });

  it('a stop string ends the row and cuts the text before it', () => {
    const free = generate(model, prompts, { maxNewTokens: 15, tokenizer: tok, stopTokenIds: [] });
    const text = free[0]!.text;
    // a two-character piece from the middle of row 0's text
    let at = Math.floor(text.length / 2);
    while (at < text.length - 1 && text.slice(at, at + 2).includes('\uFFFD')) at++;
    const stop = text.slice(at, at + 2);
    assert.equal(stop.length, 2, `row 0 text ${JSON.stringify(text)} has a usable piece`);
    const streamed: string[] = [];
    const res = generate(model, prompts, { maxNewTokens: 15, tokenizer: tok, stopTokenIds: [], stopStrings: [stop], onToken: (e) => e.row === 0 && streamed.push(e.text) });
    const cut = text.indexOf(stop);
    assert.equal(res[0]!.finishReason, 'stop_string');
    assert.equal(res[0]!.text, text.slice(0, cut));
    assert.equal(streamed.join(''), text.slice(0, cut));
    assert.deepEqual(res[0]!.tokens, free[0]!.tokens.slice(0, res[0]!.tokens.length));
    assert.ok(res[0]!.tokens.length < free[0]!.tokens.length || cut + 2 <= text.length);
  });
});
