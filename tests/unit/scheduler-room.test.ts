// The serving scheduler's in-place join on the wasm backend, where every buffer is a view of
// the one module heap: a batch cache that grew itself (LayerKVCache.reserve) has room for its
// own rows only, and a row joined past that room overwrote other allocations (the joined
// answers then differed from offline generation). The room is now the layer's own record,
// LayerKVCache.rowRoom (docs/ARCHITECTURE.md §Decoding).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { getBackend, setBackend } from '../../src/backend/index.js';
import { loadWasmBackend } from '../../src/backend/native/select.js';
import { generate } from '../../src/generate/index.js';
import { loadTokenizer } from '../../src/io/tokenizer.node.js';
import { createModel } from '../../src/models/index.js';
import { Scheduler } from '../../src/serve/scheduler.js';
import { writeByteLevelBpeTokenizer } from '../helpers/tokenizers.js';

const TINY = { model_type: 'llama', hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256, initializer_range: 0.5 };

const wasm = await loadWasmBackend();

test('rows joining a batch whose cache grew itself equal offline generation (wasm heap)', { skip: wasm ? false : 'the wasm module did not load' }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-room-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  writeByteLevelBpeTokenizer(dir, { extraWords: [' a', ' b', ' cat', ' dog', '.'] });
  const tokenizer = loadTokenizer(dir);
  const previous = getBackend();
  setBackend(wasm!);
  try {
    const model = createModel({ ...TINY, vocab_size: tokenizer.vocabSize }, { seed: 7 });
    const sched = new Scheduler(model, { tokenizer, maxBatch: 8 });
    const spec = (text: string, maxTokens: number) => ({ prompt: tokenizer.encode(text), adapter: null, maxTokens, sampling: { temperature: 0 }, seed: 0, stopTokenIds: [] });
    const specs = [spec(' the cat', 120), spec(' a dog', 100), spec(' b.', 90), spec('Hello', 80), spec(' cat dog', 70)];
    // the first two decode alone until their cache (prefill length + 16 slots) has grown
    // itself, then the others join one by one, each after more steps
    const jobs = [sched.submit(specs.slice(0, 2))];
    let steps = 0;
    await new Promise<void>((resolve) => {
      const more = specs.slice(2);
      const tick = (): void => {
        steps++;
        if (steps % 25 === 0 && more.length) jobs.push(sched.submit([more.shift()!]));
        if (more.length) setImmediate(tick);
        else resolve();
      };
      setImmediate(tick);
    });
    const results = (await Promise.all(jobs.map((j) => j.results))).flat();
    assert.ok(sched.stats.inPlaceJoins + sched.stats.cacheRebuilds >= 1, 'rows joined a running batch');
    results.forEach((r, i) => {
      const ref = generate(model, [specs[i]!.prompt], { maxNewTokens: specs[i]!.maxTokens, stopTokenIds: [] })[0]!;
      assert.deepEqual(r.tokens, ref.tokens, `sequence ${i}`);
    });
  } finally {
    setBackend(previous);
  }
});
