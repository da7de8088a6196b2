// The server on the bundled pretrained model (models/brown-llama) with two LoRA adapters trained
// by the test (makeBundledServeFixture: "sea" on plain sentences, "cooking" on ChatML chats),
// driven by the official openai client: the model list, completions for the base and each
// adapter equal to offline greedy generate() with that adapter (alone and sharing decoding
// steps), chat through the model's ChatML template, streaming chat equal to the non-streamed
// answer, and an unknown model answered 404 with the server still serving. Loopback only.
// The scheduling edge cases (long answers, disconnects, shutdown) run on the tiny random model
// in serve.test.ts, where they are fast.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import OpenAI from 'openai';
import { startServer, type LorakitServer } from '../../src/serve/index.js';
import { BUNDLED_MODEL_DIR, COOKING_CHATS, letIdleConnectionsClose, makeBundledServeFixture, type BundledServeFixture } from '../helpers/serve-fixture.js';

type Which = 'base' | 'A' | 'B';
const WHICH: readonly Which[] = ['base', 'A', 'B'];
const ADAPTER_NAMES = { A: 'sea', B: 'cooking' } as const;

let fx: BundledServeFixture;
let srv: LorakitServer;
let client: OpenAI;
let setupSeconds = 0;
const nameOf = (w: Which): string => (w === 'base' ? fx.baseName : ADAPTER_NAMES[w]);

before(async () => {
  const t0 = Date.now();
  fx = await makeBundledServeFixture();
  srv = await startServer({ model: fx.modelDir, port: 0, adapters: { [ADAPTER_NAMES.A]: fx.adapterA, [ADAPTER_NAMES.B]: fx.adapterB }, adapterDir: fx.adapterDir, maxBatch: 8 });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 30_000 });
  setupSeconds = (Date.now() - t0) / 1000;
});

after(async () => {
  await srv?.close(1000);
  fx?.cleanup();
});

describe('serve: the bundled model with two trained adapters', () => {
  beforeEach(letIdleConnectionsClose); // tests end with offline references computed in this process
  it('serves the bundled model from the repository, and both adapters were trained (their loss fell)', (t) => {
    assert.equal(fx.modelDir, BUNDLED_MODEL_DIR);
    assert.equal(fx.baseName, 'brown-llama');
    for (const w of ['A', 'B'] as const) {
      const tr = fx.training[w];
      t.diagnostic(`adapter ${ADAPTER_NAMES[w]}: ${tr.steps} steps in ${tr.seconds.toFixed(1)} s, loss ${tr.firstLoss.toFixed(3)} -> ${tr.finalLoss.toFixed(3)}`);
      assert.ok(tr.finalLoss < 0.7 * tr.firstLoss, `adapter ${ADAPTER_NAMES[w]}: loss ${tr.firstLoss} -> ${tr.finalLoss}`);
    }
    t.diagnostic(`setup (training both adapters, starting the server): ${setupSeconds.toFixed(1)} s`);
  });

  it('lists the base model and the two adapters', async () => {
    const list = await client.models.list();
    assert.deepEqual(
      list.data.map((m) => m.id),
      ['brown-llama', 'sea', 'cooking'],
    );
    for (const m of list.data) {
      assert.equal(m.object, 'model');
      assert.equal(m.owned_by, 'lorakit');
    }
    const raw = list.data as unknown as { parent: string | null; root: string; max_model_len: number }[];
    assert.deepEqual(
      raw.map((d) => d.parent),
      [null, 'brown-llama', 'brown-llama'],
    );
    assert.deepEqual(
      raw.map((d) => path.resolve(d.root)),
      [BUNDLED_MODEL_DIR, fx.adapterA, fx.adapterB].map((p) => path.resolve(p)),
    );
    assert.ok(raw.every((d) => d.max_model_len === 512));
  });

  it('a completion with the base, sea or cooking equals offline greedy generate() with it; the three differ', async () => {
    const prompt = 'The old ship sailed';
    const ids = fx.tokenizer.encode(prompt);
    const texts: string[] = [];
    for (const w of WHICH) {
      const r = await client.completions.create({ model: nameOf(w), prompt, max_tokens: 16, temperature: 0 });
      const ref = fx.offline(w, ids, { maxNewTokens: 16 });
      assert.equal(r.object, 'text_completion');
      assert.equal(r.model, nameOf(w));
      assert.equal(r.choices.length, 1);
      assert.equal(r.choices[0]!.text, ref.text, `model ${nameOf(w)}`);
      assert.equal(r.choices[0]!.finish_reason, ref.finishReason === 'length' ? 'length' : 'stop');
      assert.deepEqual(r.usage, { prompt_tokens: ids.length, completion_tokens: ref.tokens.length, total_tokens: ids.length + ref.tokens.length });
      texts.push(r.choices[0]!.text);
    }
    assert.equal(new Set(texts).size, 3, `base, sea and cooking should answer differently: ${JSON.stringify(texts)}`);
    // the served sea adapter is the trained one: it continues the sentence it was trained on
    assert.ok(texts[1]!.startsWith(' north across the cold grey sea'), `sea: ${JSON.stringify(texts[1])}`);
  });

  it('requests for the base and both adapters at once each equal their offline result', async () => {
    const ps = ['The captain', 'At dawn the', 'Make a pot of', 'In the city of'];
    const jobs = ps.flatMap((p, i) => WHICH.map((w, k) => ({ p, w, max: 6 + ((i * 3 + k) % 7) })));
    const out = await Promise.all(jobs.map((j) => client.completions.create({ model: nameOf(j.w), prompt: j.p, max_tokens: j.max, temperature: 0 })));
    out.forEach((r, i) => {
      const j = jobs[i]!;
      const ref = fx.offline(j.w, fx.tokenizer.encode(j.p), { maxNewTokens: j.max });
      assert.equal(r.choices[0]!.text, ref.text, `${JSON.stringify(j.p)} with ${nameOf(j.w)}`);
      assert.equal(r.usage!.completion_tokens, ref.tokens.length);
    });
  });

  it('chat completions go through the ChatML template and equal offline generation over it', async () => {
    const messages = [{ role: 'user' as const, content: COOKING_CHATS[0]!.user }];
    assert.equal(fx.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true }), `<|im_start|>user\n${COOKING_CHATS[0]!.user}<|im_end|>\n<|im_start|>assistant\n`);
    const ids = fx.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, tokenize: true }).ids;
    const answers: string[] = [];
    let cookingFinish: string | null = null;
    for (const w of WHICH) {
      const r = await client.chat.completions.create({ model: nameOf(w), messages, max_tokens: 24, temperature: 0 });
      const ref = fx.offline(w, ids, { maxNewTokens: 24 });
      assert.equal(r.object, 'chat.completion');
      assert.equal(r.model, nameOf(w));
      assert.equal(r.choices[0]!.message.role, 'assistant');
      assert.equal(r.choices[0]!.message.content, ref.text, `model ${nameOf(w)}`);
      assert.equal(r.choices[0]!.finish_reason, ref.finishReason === 'length' ? 'length' : 'stop');
      assert.equal(r.usage!.prompt_tokens, ids.length);
      assert.equal(r.usage!.completion_tokens, ref.tokens.length);
      answers.push(r.choices[0]!.message.content!);
      if (w === 'B') cookingFinish = r.choices[0]!.finish_reason;
    }
    assert.equal(new Set(answers).size, 3, `base, sea and cooking should answer differently: ${JSON.stringify(answers)}`);
    // cooking was trained on ChatML turns: its answer ends the turn with <|im_end|>, an EOS id of the model
    assert.ok(fx.tokenizer.eosTokenIds.includes(fx.tokenizer.encode('<|im_end|>', { addSpecialTokens: false })[0]!));
    assert.equal(cookingFinish, 'stop', `cooking: ${JSON.stringify(answers[2])}`);
  });

  it('a streamed chat answer adds up to the non-streamed one (text, finish reason, usage)', async () => {
    const messages = [
      { role: 'system' as const, content: 'You are a helpful cook.' },
      { role: 'user' as const, content: COOKING_CHATS[2]!.user },
    ];
    for (const w of ['B', 'A'] as const) {
      const full = await client.chat.completions.create({ model: nameOf(w), messages, max_tokens: 20, temperature: 0 });
      const stream = await client.chat.completions.create({ model: nameOf(w), messages, max_tokens: 20, temperature: 0, stream: true, stream_options: { include_usage: true } });
      let text = '';
      let role: string | undefined;
      let finish: string | null = null;
      let usage: OpenAI.CompletionUsage | null | undefined = null;
      let contentChunks = 0;
      for await (const c of stream) {
        assert.equal(c.object, 'chat.completion.chunk');
        assert.equal(c.model, nameOf(w));
        if (c.usage) usage = c.usage;
        const ch = c.choices[0];
        if (!ch) continue;
        if (ch.delta.role) role = ch.delta.role;
        if (ch.delta.content) {
          text += ch.delta.content;
          contentChunks++;
        }
        if (ch.finish_reason) finish = ch.finish_reason;
      }
      assert.equal(role, 'assistant');
      assert.equal(text, full.choices[0]!.message.content, `model ${nameOf(w)}`);
      assert.ok(contentChunks >= 2, `the answer should arrive in pieces, got ${contentChunks}`);
      assert.equal(finish, full.choices[0]!.finish_reason);
      assert.deepEqual(usage, full.usage);
    }
  });

  it('an unknown model is a 404 in OpenAI shape, and the server keeps serving', async () => {
    const prompt = 'The captain watched';
    const before = await client.completions.create({ model: 'sea', prompt, max_tokens: 8, temperature: 0 });
    for (const call of [
      () => client.completions.create({ model: 'no-such-adapter', prompt, max_tokens: 8 }),
      () => client.chat.completions.create({ model: 'no-such-adapter', messages: [{ role: 'user', content: 'hi' }], max_tokens: 8 }),
    ]) {
      await assert.rejects(call(), (e: unknown) => {
        assert.ok(e instanceof OpenAI.NotFoundError, String(e));
        assert.equal(e.status, 404);
        assert.equal(e.code, 'model_not_found');
        assert.equal(e.param, 'model');
        assert.equal(e.type, 'not_found_error');
        assert.match(e.message, /no-such-adapter/);
        return true;
      });
    }
    assert.equal((await fetch(`${srv.url}/health`)).status, 200);
    const again = await client.completions.create({ model: 'sea', prompt, max_tokens: 8, temperature: 0 });
    assert.equal(again.choices[0]!.text, before.choices[0]!.text);
    assert.equal(again.choices[0]!.text, fx.offline('A', fx.tokenizer.encode(prompt), { maxNewTokens: 8 }).text);
  });
});
