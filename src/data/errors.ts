// Errors of the data pipeline. Every problem names the file and the 1-based line it is about
// (line 0: the file as a whole), so a message reads like a compiler's: `train.jsonl:7: …`.
import { ProblemsError } from '../io/errors.js';

export interface DataIssue {
  file: string;
  /** 1-based line number; 0 when the problem is about the whole file */
  line: number;
  message: string;
}

export function formatIssue(issue: DataIssue): string {
  return issue.line > 0 ? `${issue.file}:${issue.line}: ${issue.message}` : `${issue.file}: ${issue.message}`;
}

/** One or more problems with a dataset file, thrown once; `problems` holds them as `file:line: …` lines. */
export class DataError extends ProblemsError {
  override name = 'DataError';
  readonly issues: readonly DataIssue[];

  /** `more`: true when scanning stopped early, so the file may hold further problems. */
  constructor(issues: readonly DataIssue[], more = false) {
    const lines = issues.map(formatIssue);
    const tail = more ? `\n  (stopped after ${issues.length} problems; run checkDataset for the full list)` : '';
    super(issues.length === 1 && !more ? lines[0]! : `${issues.length} problems in the dataset:\n${lines.map((l) => `  ${l}`).join('\n')}${tail}`, lines);
    this.issues = issues;
  }
}

/** A short description of a JSON value for messages: `a number (3)`, `an array`, `null`. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `a string`;
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number') return `a number (${value})`;
  if (typeof value === 'boolean') return `a boolean (${value})`;
  return typeof value;
}
