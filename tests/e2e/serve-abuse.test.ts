// Bounded abuse of the server on loopback: rounds of hostile traffic sent all at once beside
// valid requests (malformed and hostile JSON, bodies over the cap declared or chunked, an
// Expect: 100-continue body over the cap, prompt arrays far over the sequence limit, roles the
// data loader rejects, unknown routes and methods, clients that vanish mid-stream, half-sent
// headers held open). Every hostile request gets its status; every valid one gets the answer
// offline generation gives; afterwards /health is 200, nothing is left running or queued.
// The counts are the "requests held" of docs/RELIABILITY.md.
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startServer, type LorakitServer } from '../../src/serve/index.js';
import { makeServeFixture, prompts, type ServeFixture } from '../helpers/serve-fixture.js';

let fx: ServeFixture;
let srv: LorakitServer;
const BASE = 'tiny-llama';
const MAX_BODY = 64 * 1024;
const ROUNDS = Number(process.env.LORAKIT_ABUSE_ROUNDS ?? 6); // a longer run: LORAKIT_ABUSE_ROUNDS=40

before(async () => {
  fx = await makeServeFixture();
  srv = await startServer({ model: fx.modelDir, port: 0, adapters: { A: fx.adapterA }, maxBodyBytes: MAX_BODY, maxBatch: 8, maxQueue: 256, maxTokens: 64 });
});

after(async () => {
  await srv?.close(1000);
  fx?.cleanup();
});

interface Outcome {
  kind: string;
  status: number;
  text?: string;
}

async function post(kind: string, route: string, body: string): Promise<Outcome> {
  const res = await fetch(`${srv.url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const text = await res.text();
  return { kind, status: res.status, text };
}

/** A body over the cap declared with Expect: 100-continue: the 413 must come without a 100 Continue. */
function expectContinue(): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const u = new URL(`${srv.url}/v1/completions`);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(50 * MAX_BODY), expect: '100-continue' } });
    let continued = false;
    req.on('continue', () => {
      continued = true;
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => {
        req.destroy();
        resolve({ kind: 'expect-100-over-cap', status: continued ? -100 : res.statusCode! });
      });
    });
    req.on('error', reject);
    req.flushHeaders();
  });
}

/** A chunked body (no length declared) past the cap. */
function chunkedOverCap(): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const u = new URL(`${srv.url}/v1/completions`);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json' } });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ kind: 'chunked-over-cap', status: res.statusCode! }));
    });
    req.on('error', reject);
    const chunk = Buffer.alloc(16 * 1024, 0x20);
    for (let i = 0; i < (2 * MAX_BODY) / chunk.length; i++) req.write(chunk);
    req.end();
  });
}

/** A stream abandoned after its first event. */
async function vanishMidStream(prompt: string): Promise<Outcome> {
  const ac = new AbortController();
  const res = await fetch(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: BASE, prompt, max_tokens: 64, stream: true, ignore_eos: true }), signal: ac.signal });
  const reader = res.body!.getReader();
  await reader.read();
  ac.abort();
  await reader.read().catch(() => undefined);
  return { kind: 'vanished-mid-stream', status: res.status };
}

/** Half-sent request headers, held open until released. */
function halfHeaders(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const u = new URL(srv.url);
    const s = net.connect(Number(u.port), u.hostname, () => {
      s.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: applic');
      resolve(s);
    });
    s.on('error', () => undefined);
    s.once('error', reject);
  });
}

describe('serve: bounded abuse on loopback', () => {
  it(`${ROUNDS} rounds of hostile traffic beside valid requests: the right status for each, valid answers exact, health kept`, async () => {
    const expected: Record<string, number> = {
      'malformed-json': 400,
      'non-object-json': 400,
      'deep-json': 400,
      'declared-over-cap': 413,
      'expect-100-over-cap': 413,
      'chunked-over-cap': 413,
      'prompt-array-over-limit': 400,
      'bad-role': 400,
      'token-out-of-vocab': 400,
      'max-tokens-over-cap': 400,
      'unknown-route': 404,
      'unknown-model': 404,
      'vanished-mid-stream': 200,
    };
    const counts: Record<string, number> = {};
    const valid = prompts(8 * ROUNDS, 31);
    const held: net.Socket[] = [];
    let sent = 0;
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < 8; i++) held.push(await halfHeaders());
      const big = JSON.stringify({ model: BASE, prompt: 'the cat sits '.repeat(MAX_BODY / 8) });
      const manyPrompts = JSON.stringify({ model: BASE, prompt: Array.from({ length: 4000 }, (_, i) => `the cat ${i}`) });
      const hostile: Promise<Outcome>[] = [
        post('malformed-json', '/v1/completions', '{"model": "tiny-llama", "prompt": '),
        post('non-object-json', '/v1/chat/completions', '[1, 2, 3]'),
        post('deep-json', '/v1/completions', '['.repeat(5000) + ']'.repeat(5000)),
        post('declared-over-cap', '/v1/completions', big),
        expectContinue(),
        chunkedOverCap(),
        post('prompt-array-over-limit', '/v1/completions', manyPrompts),
        post('bad-role', '/v1/chat/completions', JSON.stringify({ model: BASE, messages: [{ role: 'wizard', content: 'hi' }] })),
        post('token-out-of-vocab', '/v1/completions', JSON.stringify({ model: BASE, prompt: [1, 2, 1e9] })),
        post('max-tokens-over-cap', '/v1/completions', JSON.stringify({ model: BASE, prompt: 'the', max_tokens: 100000 })),
        post('unknown-route', '/v1/../../etc/passwd', '{}'),
        post('unknown-model', '/v1/completions', JSON.stringify({ model: '../../A', prompt: 'the' })),
        vanishMidStream(valid[round]!),
        vanishMidStream(valid[round + 1]!),
      ];
      const goodPrompts = valid.slice(round * 8, round * 8 + 8);
      const good = goodPrompts.map((p, i) =>
        post('valid', '/v1/completions', JSON.stringify({ model: i % 2 ? 'A' : BASE, prompt: p, max_tokens: 4, temperature: 0 })).then((o) => ({ ...o, prompt: p, model: i % 2 ? ('A' as const) : ('base' as const) })),
      );
      const health = fetch(`${srv.url}/health`).then((r): Outcome => ({ kind: 'health', status: r.status }));
      const outs = await Promise.all([...hostile, health]);
      sent += outs.length + good.length;
      for (const o of outs) {
        counts[o.kind] = (counts[o.kind] ?? 0) + 1;
        if (o.kind === 'health') assert.equal(o.status, 200);
        else assert.equal(o.status, expected[o.kind], `${o.kind}: ${o.text?.slice(0, 200)}`);
      }
      for (const g of await Promise.all(good)) {
        assert.equal(g.status, 200, g.text);
        const want = fx.offline(g.model, fx.tokenizer.encode(g.prompt), { maxNewTokens: 4 }).text;
        assert.equal((JSON.parse(g.text!) as { choices: { text: string }[] }).choices[0]!.text, want, g.prompt);
        counts['valid'] = (counts['valid'] ?? 0) + 1;
      }
    }
    // the half-sent requests are still held; the server answers beside them
    assert.equal((await fetch(`${srv.url}/health`)).status, 200);
    for (const s of held) s.destroy();
    // the abandoned streams freed their rows: nothing left running or queued
    for (let i = 0; i < 200 && (srv.scheduler.stats.running > 0 || srv.scheduler.stats.queued > 0); i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(srv.scheduler.stats.running, 0);
    assert.equal(srv.scheduler.stats.queued, 0);
    const last = await post('valid', '/v1/completions', JSON.stringify({ model: 'A', prompt: 'the cat', max_tokens: 5, temperature: 0 }));
    assert.equal((JSON.parse(last.text!) as { choices: { text: string }[] }).choices[0]!.text, fx.offline('A', fx.tokenizer.encode('the cat'), { maxNewTokens: 5 }).text);
    console.log(`serve abuse: ${sent + 1} requests in ${ROUNDS} rounds and ${held.length} half-sent connections held, all answered as expected: ${JSON.stringify(counts)}`);
  });
});
