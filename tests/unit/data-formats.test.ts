import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { DataError, IGNORE_INDEX, collate, datasetFromJsonl, tokenizeRecord, type Dataset, type DatasetOptions } from '../../src/data/index.js';
import { checkDataset, loadDataset } from '../../src/data/index.node.js';
import { CHATML_TEMPLATE, LLAMA2_CHAT_TEMPLATE, writeByteLevelBpeTokenizer, writeSentencePieceBpeTokenizer, type WrittenTokenizer } from '../helpers/tokenizers.js';
import { loadTokenizer } from '../../src/io/tokenizer.node.js';

let tmp: string;
let bl: WrittenTokenizer; // byte-level BPE, ChatML, BOS added by the post-processor
let tok: Tokenizer;
let sp: WrittenTokenizer; // SentencePiece BPE, Llama-2 template (bos/eos inside the template)
let spTok: Tokenizer;

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-data-'));
  bl = writeByteLevelBpeTokenizer(path.join(tmp, 'bl'), {
    specialTokens: ['<|begin_of_text|>', '<|endoftext|>', '<|im_start|>', '<|im_end|>'],
    bosToken: '<|begin_of_text|>',
    eosToken: '<|endoftext|>',
    chatTemplate: CHATML_TEMPLATE,
  });
  tok = loadTokenizer(bl.dir);
  sp = writeSentencePieceBpeTokenizer(path.join(tmp, 'sp'), { chatTemplate: LLAMA2_CHAT_TEMPLATE });
  spTok = loadTokenizer(sp.dir);
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Writes lines (objects are JSON-encoded, strings written as they are) to a file in tmp. */
function jsonl(name: string, lines: (string | object)[]): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return file;
}

/** Byte ids of an ASCII string in the byte-level test vocabulary (id = byte value). */
const bytes = (s: string): number[] => [...Buffer.from(s, 'utf8')];

/** Labels of a single example laid out alone in a batch. */
function labelsOf(ds: Dataset, i = 0): number[] {
  return [...collate(ds.examples, [[i]]).labels];
}

async function loadErr(file: string, opts: DatasetOptions = {}, t: Tokenizer = tok): Promise<DataError> {
  try {
    await loadDataset(file, t, opts);
  } catch (err) {
    assert.ok(err instanceof DataError, `expected a DataError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected loading to fail');
}

describe('text format', () => {
  it('adds BOS via the post-processor and appends EOS; every next token is a target', async () => {
    const ds = await loadDataset(jsonl('text.jsonl', [{ text: 'Hello world' }, { text: 'Hello<|endoftext|>' }]), tok);
    assert.equal(ds.format, 'text');
    const [bos, eos, hello, world] = [bl.id('<|begin_of_text|>'), bl.id('<|endoftext|>'), bl.id('Hello'), bl.id('Ġworld')];
    assert.deepEqual([...ds.examples[0]!.ids], [bos, hello, world, eos]);
    assert.deepEqual(labelsOf(ds, 0), [hello, world, eos, IGNORE_INDEX]);
    // EOS is not doubled when the text already ends with it.
    assert.deepEqual([...ds.examples[1]!.ids], [bos, hello, eos]);
    assert.equal(ds.examples[1]!.line, 2);
  });
});

describe('prompt/completion format', () => {
  const [p, c] = ['Hello', ' world the'];
  it('is prompt tokens then completion tokens then EOS, with the prompt masked by default', async () => {
    const ds = await loadDataset(jsonl('pc.jsonl', [{ prompt: p, completion: c, id: 7 }]), tok);
    assert.equal(ds.format, 'completion');
    const [bos, eos, hello, world, the] = [bl.id('<|begin_of_text|>'), bl.id('<|endoftext|>'), bl.id('Hello'), bl.id('Ġworld'), bl.id('Ġthe')];
    assert.deepEqual([...ds.examples[0]!.ids], [bos, hello, world, the, eos]);
    // Position 0 (BOS) would predict the prompt's "Hello": masked. Then " world", " the", EOS are trained.
    assert.deepEqual(labelsOf(ds), [IGNORE_INDEX, world, the, eos, IGNORE_INDEX]);
  });
  it('trains on every token with masking off', async () => {
    const ds = await loadDataset(jsonl('pc2.jsonl', [{ prompt: p, completion: c }]), tok, { maskPrompt: false });
    assert.deepEqual(labelsOf(ds), [bl.id('Hello'), bl.id('Ġworld'), bl.id('Ġthe'), bl.id('<|endoftext|>'), IGNORE_INDEX]);
  });
  it('renders as a user/assistant chat with completionsAsChat (mlx-lm), masking the user turn', async () => {
    const ds = await loadDataset(jsonl('pc3.jsonl', [{ prompt: 'Hi', completion: 'Hello' }]), tok, { completionsAsChat: true });
    const [ims, ime, hello] = [bl.id('<|im_start|>'), bl.id('<|im_end|>'), bl.id('Hello')];
    const prompt = [ims, ...bytes('user\nHi'), ime, 10, ims, ...bytes('assistant\n')];
    assert.deepEqual([...ds.examples[0]!.ids], [...prompt, hello, ime, 10]);
    const want = prompt.map(() => IGNORE_INDEX);
    want[want.length - 1] = hello;
    assert.deepEqual(labelsOf(ds), [...want, ime, 10, IGNORE_INDEX]);
  });
});

describe('chat format', () => {
  const messages = [
    { role: 'system', content: 'Be brief' },
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello' },
    { role: 'user', content: 'x' },
    { role: 'assistant', content: ' world' },
  ];
  it('renders with the template (no extra BOS) and trains exactly on the assistant turns', async () => {
    // ChatML's cuts sit next to special tokens: the pieces concatenate to the whole encoding.
    const ds = await loadDataset(jsonl('chat.jsonl', [{ messages }]), tok);
    assert.equal(ds.format, 'chat');
    const [ims, ime, hello, world] = [bl.id('<|im_start|>'), bl.id('<|im_end|>'), bl.id('Hello'), bl.id('Ġworld')];
    const head = [ims, ...bytes('system\nBe brief'), ime, 10, ims, ...bytes('user\nHi'), ime, 10, ims, ...bytes('assistant\n')];
    const turn1 = [hello, ime, 10];
    const mid = [ims, ...bytes('user\nx'), ime, 10, ims, ...bytes('assistant\n')];
    const turn2 = [world, ime, 10];
    const ids = [...head, ...turn1, ...mid, ...turn2];
    assert.deepEqual([...ds.examples[0]!.ids], ids);
    // Targets: the tokens of both assistant turns, "<|im_end|>\n" included.
    const targets = [...head.map(() => 0), 1, 1, 1, ...mid.map(() => 0), 1, 1, 1];
    assert.deepEqual([...ds.examples[0]!.targetMask], targets);
    const labels = labelsOf(ds);
    const want = ids.map((_, t) => (t + 1 < ids.length && targets[t + 1] === 1 ? ids[t + 1]! : IGNORE_INDEX));
    assert.deepEqual(labels, want);
    assert.equal(labels.filter((l) => l !== IGNORE_INDEX).length, 6);
  });
  it('trains on every token with masking off, and then needs no assistant turn', async () => {
    const ds = await loadDataset(jsonl('chat2.jsonl', [{ messages }, { messages: [{ role: 'user', content: 'Hi' }] }]), tok, { maskPrompt: false });
    const ex = ds.examples[0]!;
    assert.ok(ex.targetMask.every((v) => v === 1));
    assert.equal(ds.examples.length, 2);
  });
  it('accepts tool turns and assistant tool calls without content', async () => {
    const ds = await loadDataset(
      jsonl('tool.jsonl', [
        {
          messages: [
            { role: 'user', content: 'Hi' },
            { role: 'assistant', tool_calls: [{ type: 'function', function: { name: 'f', arguments: {} } }] },
            { role: 'tool', content: 'x' },
            { role: 'assistant', content: 'Hello' },
          ],
        },
      ]),
      tok,
    );
    const ex = ds.examples[0]!;
    const tool = bytes('tool\nx');
    // The tool's output is not trained; the final answer is.
    const ids = [...ex.ids];
    const at = ids.findIndex((_, k) => tool.every((b, j) => ids[k + j] === b));
    assert.ok(at > 0);
    assert.ok(tool.every((_, j) => ex.targetMask[at + j] === 0));
    assert.equal(ex.targetMask[ids.lastIndexOf(bl.id('Hello'))], 1);
  });
  it('places the template BOS once and masks Llama-2 [INST] blocks (SentencePiece)', async () => {
    // Encoded alone, " Hello </s>" would gain a second "▁" (the Prepend normalizer), so the pieces do
    // not concatenate to the whole encoding: this case takes the prefix-encoding path.
    const ds = await loadDataset(jsonl('llama.jsonl', [{ messages: messages.slice(1) }]), spTok);
    const ex = ds.examples[0]!;
    const ids = [...ex.ids];
    assert.equal(ids[0], 1);
    assert.notEqual(ids[1], 1);
    const trained = ids.filter((_, t) => ex.targetMask[t] === 1);
    // " Hello </s>" and " world </s>": ▁Hello ▁ </s> ▁world ▁ </s>
    assert.deepEqual(trained, [sp.id('▁Hello'), sp.id('▁'), 2, sp.id('▁world'), sp.id('▁'), 2]);
  });
  it('encodes the pieces separately when a boundary splits a merge', () => {
    // A template with no turn markers: the prompt "Hel" and the answer "lo" render as "Hello",
    // one token when encoded whole; the model must learn to continue "Hel" with "l", "o".
    const plain = writeByteLevelBpeTokenizer(path.join(tmp, 'plain'), { chatTemplate: '{% for m in messages %}{{ m.content }}{% endfor %}' });
    const t = loadTokenizer(plain.dir);
    const r = tokenizeRecord({ format: 'chat', line: 1, messages: [{ role: 'user', content: 'Hel' }, { role: 'assistant', content: 'lo' }] }, t);
    assert.deepEqual(t.encode('Hello', { addSpecialTokens: false }), [plain.id('Hello')]);
    assert.deepEqual(r.ids, [plain.id('Hel'), ...bytes('lo')]);
    assert.deepEqual([...r.targetMask], [0, 1, 1]);
  });
  it('rejects a template that is not prefix-stable, naming file:line', async () => {
    const odd = writeByteLevelBpeTokenizer(path.join(tmp, 'odd'), { chatTemplate: '{% for m in messages %}{{ m.content }}{% if loop.last %}!{% endif %}{% endfor %}' });
    const file = jsonl('odd.jsonl', [{ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: 'c' }] }]);
    const err = await loadErr(file, {}, loadTokenizer(odd.dir));
    assert.match(err.message, new RegExp(`^${escape(file)}:1: chat template is not prefix-stable at message 2`));
  });
  it('reports a missing chat template once for the whole file', async () => {
    const base = writeByteLevelBpeTokenizer(path.join(tmp, 'base'));
    const file = jsonl('notemplate.jsonl', [{ messages: messages.slice(1) }, { messages: messages.slice(1) }]);
    const err = await loadErr(file, {}, loadTokenizer(base.dir));
    assert.equal(err.issues.length, 1);
    assert.match(err.message, new RegExp(`^${escape(file)}: chat data needs a chat template, and the tokenizer has none`));
  });
  it('reports a template exception with file:line', async () => {
    const file = jsonl('llama-tool.jsonl', [{ messages: messages.slice(1) }, { messages: [{ role: 'user', content: 'a' }, { role: 'tool', content: 'b' }, { role: 'assistant', content: 'c' }] }]);
    const err = await loadErr(file, {}, spTok);
    assert.equal(err.issues.length, 1);
    assert.equal(err.issues[0]!.line, 2);
    assert.match(err.message, /llama-tool\.jsonl:2: chat template: .*Unknown role: tool/);
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('truncation', () => {
  it('cuts the end at maxLength by default and counts truncated examples', async () => {
    const ds = await loadDataset(jsonl('long.jsonl', [{ text: 'Hello world' }, { text: 'Hello' }]), tok, { maxLength: 3 });
    assert.equal(ds.truncated, 1);
    assert.deepEqual([...ds.examples[0]!.ids], [bl.id('<|begin_of_text|>'), bl.id('Hello'), bl.id('Ġworld')]);
    assert.equal(ds.examples[0]!.fullLength, 4);
    assert.equal(ds.examples[1]!.ids.length, 3);
  });
  it('drops examples left with no target (the prompt fills maxLength)', async () => {
    const ds = await loadDataset(jsonl('long2.jsonl', [{ prompt: 'Hello world the', completion: 'x' }, { prompt: 'a', completion: 'b' }]), tok, { maxLength: 4 });
    assert.equal(ds.dropped, 1);
    assert.equal(ds.truncated, 1);
    assert.deepEqual(ds.examples.map((e) => e.line), [2]);
  });
  it('with truncation off, an example over maxLength is an error with file:line', async () => {
    const file = jsonl('long3.jsonl', [{ text: 'Hello' }, { text: 'Hello world' }]);
    const err = await loadErr(file, { maxLength: 3, truncate: false });
    assert.equal(err.message, `${file}:2: too long: 4 tokens, more than maxLength 3 (turn truncation on, raise maxLength, or shorten the example)`);
  });
});

describe('bad input', () => {
  const cases: [string, (string | object)[], number, RegExp][] = [
    ['invalid JSON', [{ text: 'a' }, '{"text": "b",}'], 2, /invalid JSON: .+/],
    ['not an object', [{ text: 'a' }, '[1, 2]'], 2, /expected a JSON object, got an array/],
    ['no known field', ['{"txt": "a"}', { text: 'b' }], 1, /no known field: expected "text", "prompt" and "completion", or "messages"; got keys "txt"/],
    ['missing field', [{ prompt: 'a', completion: 'b' }, { prompt: 'c' }], 2, /missing field "completion"/],
    ['wrong type', [{ text: 'a' }, { text: 5 }], 2, /wrong type: "text" must be a string, got a number \(5\)/],
    ['empty text', [{ text: '' }], 1, /empty text/],
    ['empty completion', [{ prompt: 'a', completion: '' }], 1, /empty completion/],
    ['messages not an array', [{ messages: 'hi' }], 1, /wrong type: "messages" must be an array/],
    ['empty messages', [{ messages: [] }], 1, /empty messages/],
    ['unknown role', [{ messages: [{ role: 'bot', content: 'a' }, { role: 'assistant', content: 'b' }] }], 1, /message 1: unknown role "bot" \(expected one of system, user, assistant, tool\)/],
    ['role of the wrong type', [{ messages: [{ role: 1, content: 'a' }] }], 1, /message 1: wrong type: "role" must be a string, got a number \(1\)/],
    ['content missing', [{ messages: [{ role: 'user' }, { role: 'assistant', content: 'b' }] }], 1, /message 1: missing field "content"/],
    ['content of the wrong type', [{ messages: [{ role: 'user', content: ['x'] }, { role: 'assistant', content: 'b' }] }], 1, /message 1: wrong type: "content" must be a string, got an array/],
    ['no assistant turn', [{ messages: [{ role: 'user', content: 'a' }] }], 1, /no assistant turn/],
    ['mixed formats', [{ text: 'a' }, { text: 'b' }, { messages: [{ role: 'user', content: 'a' }] }], 3, /mixed formats: a chat record \("messages"\) in a text file \("text", set by line 1\)/],
    ['empty file', ['', '  '], 0, /no examples: the file is empty/],
  ];
  for (const [name, lines, line, re] of cases) {
    it(`${name} → file:line and what is wrong`, async () => {
      const file = jsonl(`bad-${name.replace(/\W+/g, '-')}.jsonl`, lines);
      const err = await loadErr(file);
      assert.equal(err.issues.length, 1, err.message);
      assert.equal(err.issues[0]!.line, line);
      assert.match(err.issues[0]!.message, re);
      assert.ok(err.message.startsWith(line > 0 ? `${file}:${line}: ` : `${file}: `), err.message);
    });
  }
  it('lists up to maxProblems problems in one error', async () => {
    const lines: (string | object)[] = [{ text: 'ok' }];
    for (let i = 0; i < 30; i++) lines.push({ text: i });
    const file = jsonl('many.jsonl', lines);
    const err = await loadErr(file);
    assert.equal(err.issues.length, 20);
    assert.deepEqual(err.issues.map((i) => i.line), Array.from({ length: 20 }, (_, i) => i + 2));
    assert.match(err.message, /^20 problems in the dataset:\n/);
    assert.match(err.message, /stopped after 20 problems; run checkDataset for the full list/);
    const err5 = await loadErr(file, { maxProblems: 5 });
    assert.equal(err5.issues.length, 5);
  });
  it('reports several problems of one line', async () => {
    const err = await loadErr(jsonl('two.jsonl', [{ prompt: 3, completion: '' }]));
    assert.deepEqual(err.issues.map((i) => i.message), ['wrong type: "prompt" must be a string, got a number (3)', 'empty completion']);
  });
  it('skips blank lines and a BOM, keeping line numbers', () => {
    const ds = datasetFromJsonl('\uFEFF{"text": "a"}\r\n\n{"text": "b"}\r\n', 'mem.jsonl', tok);
    assert.deepEqual(ds.examples.map((e) => e.line), [1, 3]);
  });
});

describe('checkDataset', () => {
  it('collects every problem and reports token statistics', async () => {
    const file = jsonl('check.jsonl', [
      { prompt: 'Hello', completion: ' world' }, // [bos Hello Ġworld eos]: 4 tokens, 2 trained
      { prompt: 'a', completion: '' },
      { prompt: 'Hello', completion: ' the world' }, // 5 tokens, 3 trained
      '{oops',
      { prompt: 'Hello world the', completion: 'Hello world' }, // bos Hello Ġworld Ġthe Hello Ġworld eos: 7, 3 trained
      { text: 'x' },
    ]);
    const r = await checkDataset(file, tok, { maxLength: 6 });
    assert.equal(r.format, 'completion');
    assert.deepEqual(
      r.problems.map((p) => [p.line, p.message.split(':')[0]]),
      [
        [2, 'empty completion'],
        [4, 'invalid JSON'],
        [6, 'mixed formats'],
      ],
    );
    assert.equal(r.examples, 3);
    assert.equal(r.totalTokens, 16);
    assert.deepEqual(r.lengths, { min: 4, mean: 16 / 3, median: 5, p95: 5 + 0.9 * 2, max: 7 });
    assert.equal(r.overMaxLength, 1);
    // After truncating the 7-token example to 6 (its EOS goes): trained 2 + 3 + 2, of 4 + 5 + 6 tokens.
    assert.equal(r.trainedTokens, 7);
    assert.equal(r.maskedTokens, 8);
    assert.equal(r.noTargets, 0);
  });
  it('counts over-long examples as problems when truncation is off, and still reports them', async () => {
    const r = await checkDataset(jsonl('check2.jsonl', [{ text: 'Hello world' }, { text: 'Hello' }]), tok, { maxLength: 3, truncate: false });
    assert.deepEqual(r.problems.map((p) => p.line), [1]);
    assert.equal(r.overMaxLength, 1);
    assert.equal(r.examples, 2);
  });
});
