// Bad requests get the right status and OpenAI's error shape, and leave the server healthy:
// malformed JSON, unknown model, bad fields, oversized bodies, adapter paths out of
// adapterDir (`..`, absolute, symbolic links), API keys, a full queue.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { startServer, type LorakitServer } from '../../src/serve/index.js';
import { makeServeFixture, prompts, type ServeFixture } from '../helpers/serve-fixture.js';

let fx: ServeFixture;
let srv: LorakitServer;
const KEY = 'sk-test-key';
const BASE = 'tiny-llama';
let client: OpenAI;

before(async () => {
  fx = await makeServeFixture();
  srv = await startServer({ model: fx.modelDir, port: 0, adapters: { A: fx.adapterA }, adapterDir: fx.adapterDir, apiKey: KEY, maxBodyBytes: 4096, maxTokens: 64 });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: KEY, maxRetries: 0 });
});

after(async () => {
  await srv?.close(1000);
  fx?.cleanup();
});

async function post(route: string, body: string | object, key: string | null = KEY): Promise<{ status: number; json: Record<string, unknown> | null; res: Response }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (key !== null) headers['authorization'] = `Bearer ${key}`;
  const res = await fetch(`${srv.url}${route}`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: Record<string, unknown> | null = null;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = null;
  }
  return { status: res.status, json, res };
}

function assertErrorShape(json: Record<string, unknown> | null, param?: string): void {
  assert.ok(json && typeof json['error'] === 'object', `OpenAI error shape expected, got ${JSON.stringify(json)}`);
  const e = json['error'] as Record<string, unknown>;
  assert.equal(typeof e['message'], 'string');
  assert.equal(typeof e['type'], 'string');
  assert.ok('param' in e && 'code' in e);
  if (param !== undefined) assert.equal(e['param'], param);
}

async function assertHealthy(): Promise<void> {
  assert.equal((await fetch(`${srv.url}/health`)).status, 200);
  const prompt = 'the cat';
  const r = await client.completions.create({ model: 'A', prompt, max_tokens: 5, temperature: 0 });
  assert.equal(r.choices[0]!.text, fx.offline('A', fx.tokenizer.encode(prompt), { maxNewTokens: 5 }).text);
}

describe('serve: bad requests', () => {
  it('malformed JSON and a non-object body are 400', async () => {
    for (const body of ['{"model": "A", "prompt": ', '[1, 2]', 'null']) {
      const r = await post('/v1/completions', body);
      assert.equal(r.status, 400, body);
      assertErrorShape(r.json);
      assert.equal((r.json!['error'] as { type: string }).type, 'invalid_request_error');
    }
    await assertHealthy();
  });

  it('an unknown model is 404 (NotFoundError in the client)', async () => {
    await assert.rejects(client.completions.create({ model: 'nope', prompt: 'x', max_tokens: 2 }), (e: unknown) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
    await assert.rejects(client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }), (e: unknown) => e instanceof OpenAI.NotFoundError);
    await assertHealthy();
  });

  it('invalid fields are 400 naming the field', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ max_tokens: -1 }, 'max_tokens'],
      [{ max_tokens: 0 }, 'max_tokens'],
      [{ max_tokens: 2.5 }, 'max_tokens'],
      [{ max_tokens: 65 }, 'max_tokens'], // over the server's cap
      [{ max_tokens: 64, prompt: new Array(220).fill(5) }, 'max_tokens'], // past the context
      [{ prompt: new Array(300).fill(5) }, 'prompt'], // the prompt alone is too long
      [{ temperature: -0.5 }, 'temperature'],
      [{ temperature: 'hot' }, 'temperature'],
      [{ top_p: 0 }, 'top_p'],
      [{ n: 0 }, 'n'],
      [{ n: 100 }, 'n'],
      [{ stop: [1, 2] }, 'stop'],
      [{ seed: 1.5 }, 'seed'],
      [{ stream: 'yes' }, 'stream'],
      [{ prompt: '' }, 'prompt'],
      [{ prompt: [] }, 'prompt'],
      [{ prompt: [1, 2, 1e9] }, 'prompt'],
      [{ logprobs: 3 }, 'logprobs'],
      [{ presence_penalty: 0.5 }, 'presence_penalty'],
      [{ model: 7 }, 'model'],
    ];
    for (const [patch, param] of cases) {
      const r = await post('/v1/completions', { model: 'A', prompt: 'the cat', max_tokens: 4, ...patch });
      assert.equal(r.status, 400, JSON.stringify(patch));
      assertErrorShape(r.json, param);
    }
    await assert.rejects(client.completions.create({ model: 'A', prompt: 'x', max_tokens: -3 }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'max_tokens');
    const chat = await post('/v1/chat/completions', { model: 'A', messages: [] });
    assert.equal(chat.status, 400);
    assertErrorShape(chat.json, 'messages');
    const role = await post('/v1/chat/completions', { model: 'A', messages: [{ content: 'x' }] });
    assert.equal(role.status, 400);
    await assertHealthy();
  });

  it('an oversized body is 413', async () => {
    const r = await post('/v1/completions', { model: 'A', prompt: 'the cat '.repeat(2000), max_tokens: 2 });
    assert.equal(r.status, 413);
    assertErrorShape(r.json);
    await assert.rejects(client.completions.create({ model: 'A', prompt: 'x'.repeat(10_000), max_tokens: 2 }), (e: unknown) => e instanceof OpenAI.APIError && e.status === 413);
    await assertHealthy();
  });

  it('adapter paths outside adapterDir are refused (.., absolute, symbolic links), inside ones load', async () => {
    const outside = path.join(fx.root, 'outside');
    fs.cpSync(fx.adapterA, outside, { recursive: true });
    fs.symlinkSync(outside, path.join(fx.adapterDir, 'link-out'));
    const inner = path.join(fx.adapterDir, 'inner');
    fs.mkdirSync(inner);
    fs.copyFileSync(path.join(fx.adapterA, 'adapter_config.json'), path.join(inner, 'adapter_config.json'));
    fs.symlinkSync(path.join(outside, 'adapter_model.safetensors'), path.join(inner, 'adapter_model.safetensors'));
    for (const p of ['../outside', outside, 'link-out', inner, 'a/../../outside', '/etc']) {
      const r = await post('/v1/load_lora_adapter', { lora_name: 'evil', lora_path: p });
      assert.equal(r.status, 403, p);
      assertErrorShape(r.json, 'lora_path');
    }
    const missing = await post('/v1/load_lora_adapter', { lora_name: 'evil', lora_path: 'no-such' });
    assert.equal(missing.status, 400);
    const bad = await post('/v1/load_lora_adapter', { lora_name: '', lora_path: 'b' });
    assert.equal(bad.status, 400);
    assert.ok(!(await client.models.list()).data.some((m) => m.id === 'evil'));
    const ok = await post('/v1/load_lora_adapter', { lora_name: 'B', lora_path: path.join(fx.adapterDir, 'b') });
    assert.equal(ok.status, 200);
    const unk = await post('/v1/unload_lora_adapter', { lora_name: 'never' });
    assert.equal(unk.status, 404);
    await assertHealthy();
  });

  it('a missing or wrong API key is 401; /health needs none', async () => {
    const none = await post('/v1/completions', { model: 'A', prompt: 'x' }, null);
    assert.equal(none.status, 401);
    assertErrorShape(none.json);
    const wrong = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
    await assert.rejects(wrong.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
    await assert.rejects(wrong.completions.create({ model: 'A', prompt: 'x', max_tokens: 2 }), (e: unknown) => e instanceof OpenAI.AuthenticationError);
    const load = await post('/v1/load_lora_adapter', { lora_name: 'x', lora_path: 'b' }, 'sk-wrong');
    assert.equal(load.status, 401);
    assert.equal((await fetch(`${srv.url}/health`)).status, 200);
    await assertHealthy();
  });

  it('unknown routes are 404 and wrong methods 405', async () => {
    assert.equal((await post('/v1/nothing', {})).status, 404);
    const r = await fetch(`${srv.url}/v1/completions`, { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(r.status, 405);
    await assertHealthy();
  });
});

describe('serve: a full queue', () => {
  it('answers 429 with Retry-After, and serves again afterwards', async () => {
    const s = await startServer({ model: fx.modelDir, port: 0, maxBatch: 1, maxQueue: 1 });
    try {
      const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const long = prompts(40, 5).filter((p) => fx.offline('base', fx.tokenizer.encode(p), { maxNewTokens: 100 }).finishReason === 'length');
      const outcomes = await Promise.all(
        long.slice(0, 4).map((p) =>
          c.completions
            .create({ model: BASE, prompt: p, max_tokens: 100, temperature: 0 })
            .withResponse()
            .then(
              () => ({ status: 200, retryAfter: null as string | null }),
              (e: unknown) => ({ status: (e as InstanceType<typeof OpenAI.APIError>).status ?? 0, retryAfter: (e as InstanceType<typeof OpenAI.APIError>).headers?.get('retry-after') ?? null }),
            ),
        ),
      );
      const refused = outcomes.filter((o) => o.status === 429);
      assert.ok(refused.length >= 2, `one running and one queued at most: ${JSON.stringify(outcomes)}`);
      assert.ok(outcomes.every((o) => o.status === 200 || o.status === 429));
      for (const o of refused) assert.equal(o.retryAfter, '1');
      const r = await c.completions.create({ model: BASE, prompt: 'the cat', max_tokens: 3, temperature: 0 });
      assert.equal(r.choices[0]!.text, fx.offline('base', fx.tokenizer.encode('the cat'), { maxNewTokens: 3 }).text);
    } finally {
      await s.close(1000);
    }
  });
});
