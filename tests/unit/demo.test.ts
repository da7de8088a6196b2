// The demo's task builders and a quick end-to-end run on the bundled model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { COARSE_TAGS, HELD_OUT_IDS, coarseTag, parseBrownText, readBrownCorpus, type CoarseTag } from '../../src/corpus/brown.js';
import { BUNDLED_MODEL_DIR, TAG_CODES, decodeTags, genreSplit, posCodeIds, posCompletion, posExamples, posPair, posSentences, posTokens, runDemo, scorePos, splitHeldOut, spread, summaryTable, versusBaseline } from '../../src/demo/demo.js';
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

test('hint format: each word shown with its dictionary tag before ">", only the tags after it are targets', () => {
  const tok = loadTokenizer('models/brown-tokenizer');
  // a dictionary that is wrong on "said" and "did"
  const dict = (w: string): CoarseTag => ({ The: 'DET', jury: 'NOUN', said: 'NOUN', it: 'PRON', did: 'NOUN', '.': '.' })[w] as CoarseTag;
  const p = posPair(sentence);
  assert.equal(posCompletion(p), p.completion);
  assert.equal(posCompletion(p, dict), ' The/D>D jury/N>N said/N>V it/P>P did/N>V ./S>S');
  const [ex] = posExamples([sentence], tok, dict);
  const t = posTokens(p, tok, posCodeIds(tok), dict);
  assert.equal(tok.decode([...ex!.ids.slice(t.prompt.length, -1)]), posCompletion(p, dict));
  // targets: the tag after each ">" and EOS, never the hint
  const codes = posCodeIds(tok);
  const targets = [...ex!.ids].filter((_, i) => ex!.targetMask[i] === 1);
  assert.deepEqual(targets, [...p.tags.map((tag) => codes[tag]), 0]);
  assert.equal(t.words[2]!.at(-2), codes['NOUN']);
});

test('next format: each word with its dictionary tag and the next word\'s, "?" for a word the dictionary lacks; the tags stay the only targets', () => {
  const tok = loadTokenizer('models/brown-tokenizer');
  // a dictionary that lacks "jury" and is wrong on "said"
  const dict = (w: string): CoarseTag | undefined => ({ The: 'DET', said: 'NOUN', it: 'PRON', did: 'VERB', '.': '.' } as Record<string, CoarseTag>)[w];
  const view = { hint: dict, nextHint: true };
  const p = posPair(sentence);
  assert.equal(posCompletion(p, view), ' The/D?>D jury/?N>N said/NP>V it/PV>P did/VS>V ./S>S');
  const [ex] = posExamples([sentence], tok, view);
  const t = posTokens(p, tok, posCodeIds(tok), view);
  assert.equal(tok.decode([...ex!.ids.slice(t.prompt.length, -1)]), posCompletion(p, view));
  const codes = posCodeIds(tok);
  assert.deepEqual([...ex!.ids].filter((_, i) => ex!.targetMask[i] === 1), [...p.tags.map((tag) => codes[tag]), 0]);
  // the two hints are one code token each ("?" for the unknown word), the last word has only its own
  const enc = (x: string): number[] => tok.encode(x, { addSpecialTokens: false });
  assert.deepEqual(t.words[2], [...enc(' said'), ...enc('/'), codes['NOUN'], codes['PRON'], ...enc('>')]);
  assert.deepEqual(t.words[0], [...enc(' The'), ...enc('/'), codes['DET'], ...enc('?'), ...enc('>')]);
  assert.deepEqual(t.words[5], [...enc(' .'), ...enc('/'), codes['.'], ...enc('>')]);
});

test('versusBaseline: the baseline\'s wrong tags the adapter fixes and its right tags the adapter breaks', () => {
  const gold = ['DET', 'NOUN', 'VERB', 'PRON', 'VERB', '.'] as CoarseTag[];
  const dict = (w: string): string => ({ The: 'DET', jury: 'NOUN', said: 'NOUN', it: 'PRON', did: 'NOUN', '.': '.' })[w]!;
  const pred = [...gold];
  pred[2] = 'VERB'; // fixes "said"
  pred[4] = 'NOUN'; // keeps the baseline's error on "did"
  pred[0] = 'PRON'; // breaks "The"
  assert.deepEqual(versusBaseline([sentence], [pred], dict), { baselineWrong: 2, fixed: 1, baselineRight: 4, broken: 1 });
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

test('scorePos: decoding through the KV cache picks the same tags as recomputing every row from its start', () => {
  const tok = loadTokenizer(BUNDLED_MODEL_DIR);
  const model = loadModel(BUNDLED_MODEL_DIR);
  // sentences of different lengths in one batch: rows leave the batch as their sentences end
  const sentences = spread(posSentences(splitHeldOut(readBrownCorpus()).test), 12);
  const cached = scorePos(model, tok, sentences, { batchSize: 8 });
  const full = scorePos(model, tok, sentences, { batchSize: 8, useCache: false });
  assert.deepEqual(cached.predictions, full.predictions);
  assert.deepEqual(cached.score, full.score);
  assert.equal(cached.score.total, sentences.reduce((n, s) => n + s.tokens.length, 0));
  // the same with each word's dictionary hint in the sequence
  const hint = (w: string): CoarseTag => (w.length > 3 ? 'NOUN' : 'DET');
  const few = sentences.slice(0, 6);
  assert.deepEqual(scorePos(model, tok, few, { batchSize: 4, hint }).predictions, scorePos(model, tok, few, { batchSize: 4, hint, useCache: false }).predictions);
  // ... and with the next word's hint too, decoding restricted to each word's dictionary tags
  const view = { hint: (w: string): CoarseTag | undefined => (w.length > 6 ? undefined : hint(w)), nextHint: true };
  const allowed = (w: string): readonly CoarseTag[] | undefined => (w.length > 3 ? ['NOUN', 'VERB'] : undefined);
  const restricted = scorePos(model, tok, few, { batchSize: 4, view, allowed });
  assert.deepEqual(restricted.predictions, scorePos(model, tok, few, { batchSize: 4, view, allowed, useCache: false }).predictions);
  few.forEach((s, i) => s.tokens.forEach(([w], k) => w.length > 3 && assert.ok(['NOUN', 'VERB'].includes(restricted.predictions[i]![k]!), w)));
});

test('summaryTable: a header, a rule and one row per adapter, columns aligned', () => {
  const t = summaryTable([
    ['pos', 'accuracy', '9.9%', '94.0%', '95.1%', '200 steps, 80 s'],
    ['J style', 'perplexity', '120.5', '', '101.2', '30 steps, 9 s'],
  ]);
  assert.equal(t.length, 4);
  assert.match(t[0]!, /^task\s+metric\s+base\s+baseline\s+adapter\s+training$/);
  assert.ok(/^-+( +-+){5}$/.test(t[1]!));
  assert.equal(t[2]!.indexOf('accuracy'), t[3]!.indexOf('perplexity'));
  assert.equal(t[2]!.indexOf('9.9%') + 4, t[3]!.indexOf('120.5') + 5);
});

test('a quick demo run trains both adapters, writes PEFT folders that load back, and switches', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-demo-'));
  const lines: string[] = [];
  const r = await runDemo({ quick: true, out, progress: false, log: (l) => lines.push(l) });
  assert.ok(lines.some((l) => l.includes('most-frequent-tag baseline')));
  assert.ok(r.pos.baseline > 0.8 && r.pos.baseline <= 1);
  // the win on a small setting: a few steps already move both tasks the right way
  assert.ok(r.pos.after.total > 0 && r.pos.after.total === r.pos.before.total && r.pos.after.accuracy <= 1);
  assert.ok(r.pos.after.accuracy > r.pos.before.accuracy + 0.2, `POS accuracy ${r.pos.before.accuracy} → ${r.pos.after.accuracy}`);
  assert.ok(r.genre.adapterLoss < r.genre.baseLoss, `genre loss ${r.genre.baseLoss} → ${r.genre.adapterLoss}`);
  // the closing table and where everything went
  assert.match(r.table[0]!, /^task\s+metric\s+base\s+baseline\s+adapter\s+training$/);
  assert.equal(r.table.length, 4);
  assert.ok(r.table[2]!.includes(`${(100 * r.pos.after.accuracy).toFixed(1)}%`) && r.table[2]!.includes(`${(100 * r.pos.baseline).toFixed(1)}%`));
  assert.ok(r.table[3]!.includes(r.genre.adapterPerplexity.toFixed(1)) && r.table[3]!.includes(r.genre.basePerplexity.toFixed(1)));
  for (const l of r.table) assert.ok(lines.includes(l));
  for (const svg of Object.values(r.lossCurves)) {
    assert.ok(fs.readFileSync(svg, 'utf8').startsWith('<svg'), svg);
    assert.ok(lines.some((l) => l.startsWith('loss curves:') && l.includes(path.basename(path.dirname(svg)))));
  }
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
