// The demo tasks `lorakit web` offers (docs/ARCHITECTURE.md §Browser), as JSONL in the CLI's
// layouts, from the Brown documents the bundled model never saw (HELD_OUT_IDS), like
// `lorakit demo`'s two adapters but small enough to train in a page:
//   pos:   {"prompt": "Sentence: …\nTags:", "completion": " word/N word/V …"} (demo.ts posPair)
//   genre: {"text": …}, sentences of the held-out "learned" (J) documents, a few per line
import { BROWN_GENRES, detokenize, readBrownCorpus, splitBrown, type BrownDocument } from '../corpus/brown.js';
import { posPair, posSentences, spread, splitHeldOut } from './demo.js';

export interface WebTask {
  id: string;
  title: string;
  description: string;
  /** a prompt to try the adapter with */
  prompt: string;
  jsonl: string;
}

/** The page's demo tasks; `examples` lines each (the corpus is read once, ~1.5 s). */
export function webTasks(examples = 256, docs: readonly BrownDocument[] = readBrownCorpus()): WebTask[] {
  const { train, test } = splitHeldOut(docs);
  const pos = spread(posSentences(train, 3, 12), examples).map(posPair);
  const sample = posPair(posSentences(test, 4, 8)[0]!);
  const genre = 'J';
  const name = BROWN_GENRES.find((g) => g.letter === genre)?.category ?? genre;
  const texts: string[] = [];
  for (const d of splitBrown(docs).heldOut.filter((d) => d.genre === genre)) {
    const state = { singleQuoteOpen: false };
    for (let i = 0; i + 3 <= d.sentences.length; i += 3) texts.push(d.sentences.slice(i, i + 3).map((s) => detokenize(s.tokens.map(([w]) => w), state)).join(' '));
  }
  const lines = (rows: object[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  return [
    {
      id: 'pos',
      title: 'Part-of-speech tags',
      description: `each word of a sentence tagged with a one-letter code (N noun, V verb, D determiner, …); ${pos.length} Brown sentences the model never saw`,
      prompt: sample.prompt,
      jsonl: lines(pos.map((p) => ({ prompt: p.prompt, completion: p.completion }))),
    },
    {
      id: 'genre',
      title: `Style: ${name}`,
      description: `continue text in the style of the Brown corpus's "${name}" documents; ${Math.min(examples, texts.length)} passages held out from pretraining`,
      prompt: 'The results of the study',
      jsonl: lines(spread(texts, examples).map((text) => ({ text }))),
    },
  ];
}
