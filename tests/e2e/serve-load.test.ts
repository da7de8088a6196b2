// A bounded load test on loopback: 16 concurrent clients send 320 short requests, mixing the
// base model and two adapters (a quarter of them streamed). Every request must succeed and
// equal offline greedy generation with its adapter, and decoding steps must really be shared.
// The wall time is logged, not asserted (timings belong in benchmarks: a busy machine skews them).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { startServer, type LorakitServer } from '../../src/serve/index.js';
import { letIdleConnectionsClose, makeServeFixture, prompts, type ServeFixture } from '../helpers/serve-fixture.js';

let fx: ServeFixture;
let srv: LorakitServer;

before(async () => {
  fx = await makeServeFixture();
  srv = await startServer({ model: fx.modelDir, port: 0, adapters: { A: fx.adapterA, B: fx.adapterB }, maxBatch: 16, maxQueue: 64 });
});

after(async () => {
  await srv?.close(1000);
  fx?.cleanup();
});

describe('serve: load', () => {
  it('16 concurrent clients, 320 mixed requests: no failures, every answer equals offline generation', async () => {
    const CLIENTS = 16;
    const PER_CLIENT = 20;
    const which = ['base', 'A', 'B'] as const;
    const ps = prompts(CLIENTS * PER_CLIENT, 17);
    const jobs = ps.map((prompt, i) => ({ prompt, model: which[i % 3]!, maxTokens: 2 + ((i * 7) % 11), stream: i % 4 === 3 }));
    const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 30_000 });
    const answers = new Array<string | null>(jobs.length).fill(null);
    const failures: string[] = [];
    const latencies: number[] = [];
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        for (let k = 0; k < PER_CLIENT; k++) {
          const i = c * PER_CLIENT + k;
          const j = jobs[i]!;
          const model = j.model === 'base' ? 'tiny-llama' : j.model;
          const t = Date.now();
          try {
            if (j.stream) {
              const st = await client.completions.create({ model, prompt: j.prompt, max_tokens: j.maxTokens, temperature: 0, stream: true });
              let text = '';
              for await (const ch of st) text += ch.choices[0]?.text ?? '';
              answers[i] = text;
            } else {
              const r = await client.completions.create({ model, prompt: j.prompt, max_tokens: j.maxTokens, temperature: 0 });
              answers[i] = r.choices[0]!.text;
            }
          } catch (e) {
            failures.push(`${i}: ${(e as Error).message}`);
          }
          latencies.push(Date.now() - t);
        }
      }),
    );
    const wall = Date.now() - t0;
    assert.deepEqual(failures, []);
    let mismatches = 0;
    jobs.forEach((j, i) => {
      const ref = fx.offline(j.model, fx.tokenizer.encode(j.prompt), { maxNewTokens: j.maxTokens });
      if (answers[i] !== ref.text) mismatches++;
    });
    assert.equal(mismatches, 0, 'answers that differ from offline generation');
    const st = srv.scheduler.stats;
    const meanBatch = st.decodedRows / st.steps;
    latencies.sort((a, b) => a - b);
    console.log(`  load: ${jobs.length} requests in ${wall} ms, ${st.generatedTokens} tokens, mean batch ${meanBatch.toFixed(1)}, ${st.inPlaceJoins} in-place joins, ${st.cacheRebuilds} rebuilds, p50 ${latencies[latencies.length >> 1]} ms, p99 ${latencies[Math.floor(latencies.length * 0.99)]} ms`);
    assert.ok(meanBatch > 4, `steps should carry many rows under load, mean ${meanBatch}`);
    assert.ok(st.inPlaceJoins > 0 && st.cacheRebuilds > 0, 'both ways of joining the batch should have been used');
    await letIdleConnectionsClose(); // after the offline references
    assert.equal((await fetch(`${srv.url}/health`)).status, 200);
    assert.equal(st.running, 0);
    assert.equal(st.queued, 0);
  });
});
