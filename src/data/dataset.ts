// Datasets: a JSONL file parsed, checked and tokenized into examples, with truncation, a held-out
// split, and checkDataset (every problem plus token statistics) for `lorakit data check`.

import { DataError, type DataIssue } from './errors.js';
import { parseJsonl, type DataFormat, type DataRecord } from './records.js';
import { Rng, mixSeed } from '../tensor/rng.js';
import { RecordError, tokenizeRecord, type DataTokenizer, type TokenizeOptions } from './tokenize.js';

/** One tokenized example. */
export interface Example {
  ids: Int32Array;
  /** 1 where the token is a target (its prediction from the previous token counts in the loss) */
  targetMask: Uint8Array;
  /** where it came from */
  file: string;
  line: number;
  /** length before truncation (a line longer than maxLength by far is encoded from its head: then at least maxLength + 64) */
  fullLength: number;
}

export interface DatasetOptions extends TokenizeOptions {
  /** Longest example in tokens. Default 2048. */
  maxLength?: number;
  /** Cut longer examples at maxLength (keeping the start). Default true; false makes them errors. */
  truncate?: boolean;
  /** The loader stops after this many problems and throws them together. Default 20. */
  maxProblems?: number;
  /** The model's vocabulary size: a token id at or past it (a tokenizer that does not match the model) is a problem naming the line. */
  vocabSize?: number;
}

export interface Dataset {
  file: string;
  format: DataFormat;
  examples: Example[];
  /** examples cut at maxLength */
  truncated: number;
  /** examples left with no target at all after truncation (all of it was prompt): dropped */
  dropped: number;
  /** the lines of the dropped examples */
  droppedLines: number[];
}

export const DEFAULT_MAX_LENGTH = 2048;

/** Number of targets (tokens whose prediction is trained) in an example. Token 0 is never one. */
export function targetCount(ex: { targetMask: Uint8Array }): number {
  let n = 0;
  for (let t = 1; t < ex.targetMask.length; t++) n += ex.targetMask[t]!;
  return n;
}

function checkOptions(options: DatasetOptions): { maxLength: number; truncate: boolean; maxProblems: number } {
  const maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH;
  const maxProblems = options.maxProblems ?? 20;
  if (!Number.isInteger(maxLength) || maxLength < 2) throw new RangeError(`dataset: maxLength must be an integer ≥ 2, got ${maxLength}`);
  if (!Number.isInteger(maxProblems) || maxProblems < 1) throw new RangeError(`dataset: maxProblems must be a positive integer, got ${maxProblems}`);
  return { maxLength, truncate: options.truncate ?? true, maxProblems };
}

interface Scan {
  format: DataFormat | null;
  records: DataRecord[];
  tokenized: { rec: DataRecord; ids: number[]; targetMask: Uint8Array }[];
  issues: DataIssue[];
  stopped: boolean;
}

/** Parses and tokenizes, sending problems to `report` (false from it stops the scan). */
function scan(content: string, file: string, tok: DataTokenizer, options: DatasetOptions, limit: number, tooLongIsProblem: boolean, maxLength: number): Scan {
  const issues: DataIssue[] = [];
  let stopped = false;
  const report = (issue: DataIssue): boolean => {
    if (issues.length >= limit) {
      stopped = true;
      return false;
    }
    issues.push(issue);
    return true;
  };
  const maskPrompt = options.maskPrompt ?? true;
  const parsed = parseJsonl(content, file, { requireAssistant: maskPrompt }, report);
  const tokenized: Scan['tokenized'] = [];
  if (parsed.format === null && issues.length === 0) report({ file, line: 0, message: 'no examples: the file is empty' });
  const needsTemplate = parsed.format === 'chat' || (parsed.format === 'completion' && options.completionsAsChat === true);
  if (needsTemplate && tok.hasChatTemplate === false) {
    report({ file, line: 0, message: `${parsed.format === 'chat' ? 'chat data' : 'completionsAsChat'} needs a chat template, and the tokenizer has none (a base model's folder may lack one: add chat_template to tokenizer_config.json or a chat_template.jinja)` });
    issues.sort((a, b) => a.line - b.line);
    return { format: parsed.format, records: parsed.records, tokenized, issues, stopped };
  }
  for (const rec of parsed.records) {
    if (stopped) break;
    let t;
    try {
      t = tokenizeRecord(rec, tok, options);
    } catch (err) {
      if (!(err instanceof RecordError)) throw err;
      report({ file, line: rec.line, message: err.message });
      continue;
    }
    if (options.vocabSize !== undefined) {
      const bad = t.ids.find((id) => id >= options.vocabSize!);
      if (bad !== undefined) {
        report({ file, line: rec.line, message: `token id ${bad} is outside the model's vocabulary of ${options.vocabSize} (vocab_size): the tokenizer does not match the model` });
        continue;
      }
    }
    if (tooLongIsProblem && t.ids.length > maxLength) {
      // Reported, but kept for checkDataset's statistics (the loader throws on any problem).
      report({ file, line: rec.line, message: `too long: ${t.ids.length} tokens, more than maxLength ${maxLength} (turn truncation on, raise maxLength, or shorten the example)` });
    }
    tokenized.push({ rec, ids: t.ids, targetMask: t.targetMask });
  }
  // Issues arrive in line order from the parser but tokenizer problems come after; sort them.
  issues.sort((a, b) => a.line - b.line);
  return { format: parsed.format, records: parsed.records, tokenized, issues, stopped };
}

/**
 * Builds a dataset from JSONL text (the loader behind loadDataset). Fails fast: it stops after
 * `maxProblems` problems and throws them together as one DataError, each with file:line.
 */
export function datasetFromJsonl(content: string, file: string, tokenizer: DataTokenizer, options: DatasetOptions = {}): Dataset {
  const { maxLength, truncate, maxProblems } = checkOptions(options);
  // cut examples need only their first maxLength tokens: a huge line is encoded from a prefix
  // (tokenize.ts encodeHead); checkJsonl encodes whole lines for exact statistics
  const s = scan(content, file, tokenizer, truncate ? { ...options, maxTokens: maxLength } : options, maxProblems, !truncate, maxLength);
  if (s.issues.length > 0) throw new DataError(s.issues, s.stopped);
  const examples: Example[] = [];
  let truncated = 0;
  let dropped = 0;
  const droppedLines: number[] = [];
  for (const { rec, ids, targetMask } of s.tokenized) {
    const n = Math.min(ids.length, maxLength);
    if (ids.length > maxLength) truncated++;
    const ex: Example = { ids: Int32Array.from(ids.slice(0, n)), targetMask: targetMask.slice(0, n), file, line: rec.line, fullLength: ids.length };
    if (targetCount(ex) === 0) {
      dropped++;
      droppedLines.push(rec.line);
      continue;
    }
    examples.push(ex);
  }
  if (examples.length === 0) {
    throw new DataError([{ file, line: 0, message: `no examples left: all ${dropped} had no target tokens within maxLength ${maxLength}` }]);
  }
  return { file, format: s.format!, examples, truncated, dropped, droppedLines };
}

/**
 * Splits off a held-out set: round(fraction · n) examples (at least 1, and at least 1 left to train)
 * chosen by a permutation from `seed`; both parts keep file order. The same seed gives the same split.
 */
export function splitDataset(ds: Dataset, fraction: number, seed = 0): { train: Dataset; valid: Dataset } {
  const n = ds.examples.length;
  if (!(fraction > 0 && fraction < 1)) throw new RangeError(`splitDataset: fraction must be in (0, 1), got ${fraction}`);
  if (n < 2) throw new RangeError(`splitDataset: ${ds.file} has ${n} example(s); a split needs at least 2`);
  const k = Math.min(n - 1, Math.max(1, Math.round(fraction * n)));
  const perm = new Rng(mixSeed(seed, 0x5711)).permutation(n);
  const held = new Set(perm.slice(0, k));
  const pick = (inValid: boolean): Example[] => ds.examples.filter((_, i) => held.has(i) === inValid);
  const train = pick(false);
  const valid = pick(true);
  const countTruncated = (exs: Example[]): number => exs.filter((e) => e.fullLength > e.ids.length).length;
  return {
    train: { ...ds, examples: train, truncated: countTruncated(train) },
    valid: { ...ds, examples: valid, truncated: countTruncated(valid), dropped: 0, droppedLines: [] },
  };
}

// ---------------------------------------------------------------------------------------------

export interface LengthStats {
  min: number;
  mean: number;
  median: number;
  p95: number;
  max: number;
}

export interface DatasetReport {
  file: string;
  format: DataFormat | null;
  /** every problem in the file, in line order */
  problems: DataIssue[];
  /** examples that parsed and tokenized */
  examples: number;
  /** tokens of those examples, before truncation */
  totalTokens: number;
  /** example lengths in tokens, before truncation (zeros when there are none) */
  lengths: LengthStats;
  maxLength: number;
  /** examples longer than maxLength */
  overMaxLength: number;
  /** after truncation (when on): tokens the loss trains on, and the rest (prompt, first token) */
  trainedTokens: number;
  maskedTokens: number;
  /** examples left with no target after truncation (the loader drops them) */
  noTargets: number;
}

function percentile(sorted: readonly number[], q: number): number {
  // Linear interpolation between closest ranks (numpy's default).
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Length statistics of a list of lengths (all zeros for an empty list). */
export function lengthStats(lengths: readonly number[]): LengthStats {
  if (lengths.length === 0) return { min: 0, mean: 0, median: 0, p95: 0, max: 0 };
  const s = [...lengths].sort((a, b) => a - b);
  return { min: s[0]!, mean: s.reduce((a, b) => a + b, 0) / s.length, median: percentile(s, 0.5), p95: percentile(s, 0.95), max: s[s.length - 1]! };
}

/** Checks a JSONL text completely: every problem (not just the first) and token statistics. */
export function checkJsonl(content: string, file: string, tokenizer: DataTokenizer, options: DatasetOptions = {}): DatasetReport {
  const { maxLength, truncate } = checkOptions(options);
  const s = scan(content, file, tokenizer, options, Infinity, !truncate, maxLength);
  const lengths = s.tokenized.map((t) => t.ids.length);
  let trained = 0;
  let total = 0;
  let kept = 0;
  let noTargets = 0;
  const problems = [...s.issues];
  for (const { rec, ids, targetMask } of s.tokenized) {
    const n = truncate ? Math.min(ids.length, maxLength) : ids.length;
    const tc = targetCount({ targetMask: targetMask.subarray(0, n) });
    if (tc === 0) {
      noTargets++;
      // training drops such an example: name it
      const all = targetCount({ targetMask });
      problems.push({
        file,
        line: rec.line,
        message: all > 0 ? `nothing to train within maxLength ${maxLength}: the prompt fills the first ${n} of its ${ids.length} tokens; training drops this example` : 'nothing to train: no target tokens (all of it is prompt or masked); training drops this example',
      });
    }
    trained += tc;
    kept += n;
    total += ids.length;
  }
  return {
    file,
    format: s.format,
    problems: problems.sort((a, b) => a.line - b.line),
    examples: s.tokenized.length,
    totalTokens: total,
    lengths: lengthStats(lengths),
    maxLength,
    overMaxLength: lengths.filter((n) => n > maxLength).length,
    trainedTokens: trained,
    maskedTokens: kept - trained,
    noTargets,
  };
}
