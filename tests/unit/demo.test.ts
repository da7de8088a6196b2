// The demo's task builders and a quick end-to-end run on the bundled model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { COARSE_TAGS, HELD_OUT_IDS, coarseTag, parseBrownText, readBrownCorpus } from '../../src/corpus/brown.js';
import { BUNDLED_MODEL_DIR, TAG_CODES, decodeTags, genreSplit, posCodeIds, posExamples, posPair, posSentences, posTokens, runDemo, splitHeldOut, spread } from '../../src/demo/demo.js';
import { loadPeftModel } from '../../src/lora/files.node.js';
import { loadModel } from '../../src/models/load.node.js';
import { loadTokenizer } from '../../src/io/tokenizer.node.js';

const sentence = parseBrownText('\tThe/at jury/nn said/vbd it/pps did/dod ./.\n')[0]!;

test('posPair: the sentence as the prompt, each word with its coarse tag code as the completion', () => {
  const p = posPair(sentence);
  assert.equal(p.prompt, 'Sentence: The jury said it did .\nTags:');
  assert.deepEqual(p.tags, ['DET', 'NOUN', 'VERB', 'PRON', 'VERB', '.']);
  assert.equal(p.completion, ' The/D jury/N said/V it/P did/V ./S');
  assert.deepEqual(decodeTags(p.completion), p.tags);
  assert.deepEqual(decodeTags(' a/D b/Q c'), ['DET', '?', '?']);
  // codes are distinct single tokens
  const tok = loadTokenizer('models/brown-tokenizer');
  const codes = COARSE_TAGS.map((t) => TAG_CODES[t]);
  assert.equal(new Set(codes).size, COARSE_TAGS.length);
  const ids = posCodeIds(tok);
  assert.equal(new Set(Object.values(ids)).size, COARSE_TAGS.length);
});

test('posExamples: prompt and repeated words masked, the tag codes and EOS are the targets', () => {
  const tok = loadTokenizer('models/brown-tokenizer');
  const [ex] = posExamples([sentence], tok);
  const t = posTokens(posPair(sentence), tok);
  const codes = posCodeIds(tok);
  const want: number[] = [...t.prompt];
  const mask: number[] = t.prompt.map(() => 0);
  ['DET', 'NOUN', 'VERB', 'PRON', 'VERB', '.'].forEach((tag, k) => {
    want.push(...t.words[k]!, codes[tag as keyof typeof codes]);
    mask.push(...t.words[k]!.map(() => 0), 1);
  });
  want.push(0);
  mask.push(1);
  assert.deepEqual([...ex!.ids], want);
  assert.deepEqual([...ex!.targetMask], mask);
  assert.equal(tok.decode([...ex!.ids.slice(t.prompt.length, -1)]), posPair(sentence).completion);
});

test('genreSplit: every held-out document of the genre, first 60% to train, the rest to test', () => {
  const docs = readBrownCorpus();
  const g = genreSplit(docs, 'J');
  assert.deepEqual(g.docs.map((d) => d.id), HELD_OUT_IDS.filter((id) => id.startsWith('cj')));
  g.docs.forEach((d, i) => {
    assert.deepEqual([...g.train[i]!.sentences, ...g.test[i]!.sentences], [...d.sentences]);
    assert.equal(g.train[i]!.sentences.length, Math.floor(0.6 * d.sentences.length));
  });
});

test('splitHeldOut: the held-out documents only, halves alternating within each genre', () => {
  const docs = readBrownCorpus();
  const { train, test: testHalf } = splitHeldOut(docs);
  const ids = [...train, ...testHalf].map((d) => d.id).sort();
  assert.deepEqual(ids, [...HELD_OUT_IDS].sort());
  assert.equal(new Set(ids).size, ids.length);
  for (const g of new Set(train.map((d) => d.genre))) {
    const a = train.filter((d) => d.genre === g).length;
    const b = testHalf.filter((d) => d.genre === g).length;
    assert.ok(a === b || a === b + 1, `genre ${g}: ${a} vs ${b}`);
  }
  const s = posSentences(train);
  assert.ok(s.length > 1000 && s.every((x) => x.tokens.length >= 3 && x.tokens.length <= 40));
  assert.ok(s.every((x) => x.tokens.every(([, t]) => COARSE_TAGS.includes(coarseTag(t)))));
  assert.deepEqual(spread([1, 2, 3, 4, 5, 6], 3), [1, 3, 5]);
});

test('a quick demo run trains both adapters, writes PEFT folders that load back, and switches', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-demo-'));
  const lines: string[] = [];
  const r = await runDemo({ quick: true, out, progress: false, log: (l) => lines.push(l) });
  assert.ok(lines.some((l) => l.includes('most-frequent-tag baseline')));
  assert.ok(r.pos.baseline > 0.8 && r.pos.baseline <= 1);
  // training helped, even in a quick run: more tags right than before it, a lower loss on the genre's held-out text
  assert.ok(r.pos.after.total > 0 && r.pos.after.total === r.pos.before.total);
  assert.ok(r.pos.after.accuracy > r.pos.before.accuracy, `tagging accuracy ${r.pos.before.accuracy} before, ${r.pos.after.accuracy} after`);
  assert.ok(r.genre.adapterLoss < r.genre.baseLoss, `genre loss ${r.genre.baseLoss} before, ${r.genre.adapterLoss} after`);
  for (const name of ['pos', 'genre'] as const) {
    const dir = r.adapters[name]!;
    assert.ok(fs.existsSync(path.join(dir, 'adapter_config.json')), dir);
    assert.ok(fs.existsSync(path.join(dir, 'adapter_model.safetensors')), dir);
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(cfg['peft_type'], 'LORA');
    const peft = loadPeftModel(loadModel(BUNDLED_MODEL_DIR), dir, { adapterName: name });
    assert.ok(peft.loraLayers.size > 0);
  }
  assert.equal(r.switching.length, 2);
  for (const s of r.switching) assert.deepEqual(Object.keys(s.outputs).sort(), ['base', 'genre', 'pos']);
  fs.rmSync(out, { recursive: true, force: true });
});
