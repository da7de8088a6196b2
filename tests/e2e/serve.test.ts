// The server through the official openai client: models, completions and chat for the base
// and two adapters (equal to offline generate() with that adapter), streaming, n and seeds,
// stop strings, mixed adapters sharing decoding steps, adapters loaded and unloaded at run
// time, a client that disconnects, and graceful shutdown. Loopback only.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { startServer, type LorakitServer } from '../../src/serve/index.js';
import { makeServeFixture, prompts, type ServeFixture } from '../helpers/serve-fixture.js';

let fx: ServeFixture;
let srv: LorakitServer;
let client: OpenAI;
const BASE = 'tiny-llama';
const nameOf = (w: 'base' | 'A' | 'B'): string => (w === 'base' ? BASE : w);

before(async () => {
  fx = await makeServeFixture();
  srv = await startServer({ model: fx.modelDir, port: 0, adapters: { A: fx.adapterA, B: fx.adapterB }, adapterDir: fx.adapterDir, maxBatch: 8 });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 20_000 });
});

after(async () => {
  await srv?.close(1000);
  fx?.cleanup();
});

describe('serve: models and generation', () => {
  it('lists the base model and the adapters in OpenAI list shape', async () => {
    const list = await client.models.list();
    assert.deepEqual(
      list.data.map((m) => m.id),
      [BASE, 'A', 'B'],
    );
    for (const m of list.data) {
      assert.equal(m.object, 'model');
      assert.equal(typeof m.created, 'number');
    }
    const raw = (await (await fetch(`${srv.url}/v1/models`)).json()) as { object: string; data: { parent: string | null }[] };
    assert.equal(raw.object, 'list');
    assert.deepEqual(
      raw.data.map((d) => d.parent),
      [null, BASE, BASE],
    );
  });

  it('a completion with the base or an adapter equals offline greedy generate() with it; the three differ', async () => {
    const prompt = 'the red cat sits and the';
    const ids = fx.tokenizer.encode(prompt);
    const texts: string[] = [];
    for (const w of ['base', 'A', 'B'] as const) {
      const r = await client.completions.create({ model: nameOf(w), prompt, max_tokens: 12, temperature: 0 });
      const ref = fx.offline(w, ids, { maxNewTokens: 12 });
      assert.equal(r.object, 'text_completion');
      assert.equal(r.model, nameOf(w));
      assert.equal(r.choices.length, 1);
      assert.equal(r.choices[0]!.text, ref.text, `model ${w}`);
      assert.equal(r.choices[0]!.finish_reason, ref.finishReason === 'length' ? 'length' : 'stop');
      assert.deepEqual(r.usage, { prompt_tokens: ids.length, completion_tokens: ref.tokens.length, total_tokens: ids.length + ref.tokens.length });
      texts.push(r.choices[0]!.text);
    }
    assert.equal(new Set(texts).size, 3, `base, A and B should answer differently: ${JSON.stringify(texts)}`);
  });

  it('prompts given as token ids, and several prompts in one request', async () => {
    const ps = ['the blue dog', 'the green bird sings'].map((p) => fx.tokenizer.encode(p));
    const r = await client.completions.create({ model: 'B', prompt: ps, max_tokens: 6, temperature: 0 });
    assert.equal(r.choices.length, 2);
    ps.forEach((ids, i) => assert.equal(r.choices[i]!.text, fx.offline('B', ids, { maxNewTokens: 6 }).text));
    assert.equal(r.usage!.prompt_tokens, ps[0]!.length + ps[1]!.length);
  });

  it('chat completions render the chat template and equal offline generation over it', async () => {
    const messages = [
      { role: 'system' as const, content: 'you are a bird' },
      { role: 'user' as const, content: 'the cat sits' },
    ];
    const ids = fx.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true }).ids;
    for (const w of ['base', 'A'] as const) {
      const r = await client.chat.completions.create({ model: nameOf(w), messages, max_tokens: 10, temperature: 0 });
      const ref = fx.offline(w, ids, { maxNewTokens: 10 });
      assert.equal(r.object, 'chat.completion');
      assert.equal(r.choices[0]!.message.role, 'assistant');
      assert.equal(r.choices[0]!.message.content, ref.text);
      assert.equal(r.usage!.prompt_tokens, ids.length);
      assert.equal(r.usage!.completion_tokens, ref.tokens.length);
    }
  });

  it('streams completions and chat as OpenAI chunks (usage on request) that add up to the full answer', async () => {
    const prompt = 'the dog runs and the';
    const ids = fx.tokenizer.encode(prompt);
    const ref = fx.offline('A', ids, { maxNewTokens: 14 });
    const stream = await client.completions.create({ model: 'A', prompt, max_tokens: 14, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined = null;
    let chunks = 0;
    for await (const c of stream) {
      chunks++;
      assert.equal(c.object, 'text_completion');
      if (c.usage) usage = c.usage;
      for (const ch of c.choices) {
        text += ch.text;
        if (ch.finish_reason) finish = ch.finish_reason;
      }
    }
    assert.equal(text, ref.text);
    assert.equal(finish, 'length');
    assert.ok(chunks >= 2);
    assert.equal(usage?.completion_tokens, ref.tokens.length);

    const messages = [{ role: 'user' as const, content: 'the bird sings' }];
    const cids = fx.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true }).ids;
    const cref = fx.offline('B', cids, { maxNewTokens: 9 });
    const cs = await client.chat.completions.create({ model: 'B', messages, max_tokens: 9, temperature: 0, stream: true });
    let ctext = '';
    let role: string | undefined;
    for await (const c of cs) {
      assert.equal(c.object, 'chat.completion.chunk');
      const d = c.choices[0]?.delta;
      if (d?.role) role = d.role;
      ctext += d?.content ?? '';
    }
    assert.equal(role, 'assistant');
    assert.equal(ctext, cref.text);
  });

  it('the raw event stream ends with data: [DONE]', async () => {
    const res = await fetch(`${srv.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: BASE, prompt: 'the cat', max_tokens: 3, temperature: 0, stream: true }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const body = await res.text();
    const events = body.split('\n\n').filter((e) => e !== '');
    assert.ok(events.every((e) => e.startsWith('data: ')));
    assert.equal(events[events.length - 1], 'data: [DONE]');
  });

  it('n choices with a seed sample like offline generate() with seed + i; the same seed repeats', async () => {
    const prompt = 'the green';
    const ids = fx.tokenizer.encode(prompt);
    const ask = (): Promise<OpenAI.Completion> => client.completions.create({ model: 'A', prompt, max_tokens: 8, temperature: 1.3, top_p: 0.95, n: 3, seed: 5 });
    const r1 = await ask();
    const r2 = await ask();
    assert.equal(r1.choices.length, 3);
    r1.choices.forEach((c, i) => {
      assert.equal(c.index, i);
      assert.equal(c.text, fx.offline('A', ids, { maxNewTokens: 8, temperature: 1.3, topP: 0.95, seed: 5 + i }).text);
      assert.equal(c.text, r2.choices[i]!.text);
    });
    assert.equal(r1.usage!.prompt_tokens, ids.length);
  });

  it('stop strings cut the text as offline generation does', async () => {
    const prompt = 'the red cat sits and the';
    const ids = fx.tokenizer.encode(prompt);
    const full = fx.offline('base', ids, { maxNewTokens: 12 }).text;
    const stop = [...full].slice(3, 5).join('');
    const ref = fx.offline('base', ids, { maxNewTokens: 12, stopStrings: [stop] });
    assert.equal(ref.finishReason, 'stop_string');
    const r = await client.completions.create({ model: BASE, prompt, max_tokens: 12, temperature: 0, stop });
    assert.equal(r.choices[0]!.text, ref.text);
    assert.equal(r.choices[0]!.finish_reason, 'stop');
  });

  it('requests for different adapters share decoding steps and each equals its offline result', async () => {
    const ps = prompts(24, 3);
    const which = ['base', 'A', 'B'] as const;
    const before = srv.scheduler.stats;
    const out = await Promise.all(
      ps.map((p, i) => client.completions.create({ model: nameOf(which[i % 3]!), prompt: p, max_tokens: 4 + (i % 9), temperature: 0 })),
    );
    out.forEach((r, i) => {
      const ref = fx.offline(which[i % 3]!, fx.tokenizer.encode(ps[i]!), { maxNewTokens: 4 + (i % 9) });
      assert.equal(r.choices[0]!.text, ref.text, `request ${i} (${which[i % 3]})`);
      assert.equal(r.usage!.completion_tokens, ref.tokens.length);
    });
    const after = srv.scheduler.stats;
    const meanBatch = (after.decodedRows - before.decodedRows) / (after.steps - before.steps);
    assert.ok(meanBatch > 2, `decoding steps should carry several rows, mean ${meanBatch}`);
  });

  it('long answers (past one attention key tile) that join at different times still equal offline generation', async () => {
    const which = ['A', 'base', 'B', 'A', 'B', 'base'] as const;
    const ps = prompts(6, 21);
    const lens = [150, 120, 90, 140, 70, 110];
    const started: Promise<OpenAI.Completion>[] = [];
    for (let i = 0; i < ps.length; i++) {
      started.push(client.completions.create({ model: nameOf(which[i]!), prompt: ps[i]!, max_tokens: lens[i]!, temperature: 0, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming));
      await new Promise((r) => setTimeout(r, 15)); // later requests join a batch already decoding
    }
    const out = await Promise.all(started);
    out.forEach((r, i) => {
      const ids = fx.tokenizer.encode(ps[i]!);
      assert.equal(r.usage!.completion_tokens, lens[i], 'ignore_eos runs to max_tokens');
      // offline with no stop tokens: the same as ignore_eos
      const ref = fx.offline(which[i]!, ids, { maxNewTokens: lens[i]!, stopTokenIds: [] });
      assert.equal(r.choices[0]!.text, ref.text, `request ${i} (${which[i]})`);
    });
  });
});

describe('serve: adapters at run time, disconnects, shutdown', () => {
  it('loads an adapter from inside adapterDir, serves it, unloads it (then 404)', async () => {
    const copy = path.join(fx.adapterDir, 'a-copy');
    fs.cpSync(fx.adapterA, copy, { recursive: true });
    const post = (route: string, body: unknown): Promise<Response> =>
      fetch(`${srv.url}/v1/${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const res = await post('load_lora_adapter', { lora_name: 'org/a.v2', lora_path: 'a-copy' });
    assert.equal(res.status, 200, await res.clone().text());
    assert.match(await res.text(), /Success/);
    assert.ok((await client.models.list()).data.some((m) => m.id === 'org/a.v2'));
    const prompt = 'the blue bird';
    const r = await client.completions.create({ model: 'org/a.v2', prompt, max_tokens: 7, temperature: 0 });
    assert.equal(r.choices[0]!.text, fx.offline('A', fx.tokenizer.encode(prompt), { maxNewTokens: 7 }).text);
    assert.equal((await post('load_lora_adapter', { lora_name: 'org/a.v2', lora_path: 'a-copy' })).status, 400, 'loading a name twice');
    const un = await post('unload_lora_adapter', { lora_name: 'org/a.v2' });
    assert.equal(un.status, 200);
    await assert.rejects(client.completions.create({ model: 'org/a.v2', prompt, max_tokens: 2 }), (e: unknown) => e instanceof OpenAI.NotFoundError);
    assert.equal((await post('unload_lora_adapter', { lora_name: 'org/a.v2' })).status, 404);
    // the other adapters are untouched
    const again = await client.completions.create({ model: 'A', prompt, max_tokens: 7, temperature: 0 });
    assert.equal(again.choices[0]!.text, r.choices[0]!.text);
  });

  it('a client that closes its stream frees its row', async () => {
    // a prompt whose answer runs to max_tokens (no early EOS)
    const prompt = prompts(40, 9).find((p) => fx.offline('B', fx.tokenizer.encode(p), { maxNewTokens: 200 }).finishReason === 'length')!;
    assert.ok(prompt);
    const before = srv.scheduler.stats.generatedTokens;
    const stream = await client.completions.create({ model: 'B', prompt, max_tokens: 200, temperature: 0, stream: true });
    let got = 0;
    for await (const c of stream) {
      got += c.choices.length;
      if (got >= 2) break; // closes the connection
    }
    const t0 = Date.now();
    while (srv.scheduler.stats.running > 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 5));
    assert.equal(srv.scheduler.stats.running, 0, 'the row should leave the batch');
    const made = srv.scheduler.stats.generatedTokens - before;
    assert.ok(made < 200, `generation should stop early, made ${made} tokens`);
    assert.equal((await fetch(`${srv.url}/health`)).status, 200);
  });

  it('close() lets an in-flight request finish, then refuses new ones', async () => {
    const s2 = await startServer({ model: fx.modelDir, port: 0, adapters: { A: fx.adapterA } });
    const c2 = new OpenAI({ baseURL: `${s2.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const prompt = prompts(40, 11).find((p) => fx.offline('A', fx.tokenizer.encode(p), { maxNewTokens: 150 }).finishReason === 'length')!;
    assert.ok(prompt);
    const pending = c2.completions.create({ model: 'A', prompt, max_tokens: 150, temperature: 0 });
    const t0 = Date.now();
    while (s2.scheduler.stats.running === 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 1));
    assert.equal(s2.scheduler.stats.running, 1, 'the request should be decoding when close() is called');
    const closing = s2.close(10_000);
    const r = await pending;
    assert.equal(r.choices[0]!.text, fx.offline('A', fx.tokenizer.encode(prompt), { maxNewTokens: 150 }).text);
    assert.equal(r.choices[0]!.finish_reason, 'length');
    await closing;
    await assert.rejects(fetch(`${s2.url}/health`));
  });

  it('close() with no grace fails running requests cleanly (503 / an error event)', async () => {
    const s3 = await startServer({ model: fx.modelDir, port: 0 });
    const c3 = new OpenAI({ baseURL: `${s3.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const long = prompts(40, 5).filter((p) => fx.offline('base', fx.tokenizer.encode(p), { maxNewTokens: 200 }).finishReason === 'length');
    assert.ok(long.length >= 2);
    const caught = (p: Promise<unknown>): Promise<unknown> => p.then(() => null, (e: unknown) => e);
    const plain = caught(c3.completions.create({ model: BASE, prompt: long[0]!, max_tokens: 200, temperature: 0 }));
    const streamed = caught(
      (async () => {
        const st = await c3.completions.create({ model: BASE, prompt: long[1]!, max_tokens: 200, temperature: 0, stream: true });
        for await (const c of st) void c;
      })(),
    );
    const t0 = Date.now();
    while (s3.scheduler.stats.running < 2 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 1));
    assert.equal(s3.scheduler.stats.running, 2);
    await s3.close(0);
    const e1 = await plain;
    assert.ok(e1 instanceof OpenAI.APIError && e1.status === 503, String(e1));
    const e2 = await streamed;
    assert.ok(e2 instanceof OpenAI.APIError && /shut down/.test(e2.message), String(e2));
  });
});
