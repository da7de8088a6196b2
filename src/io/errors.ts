// Errors of the io layer: every message names the file (and the tensor or key) and says what
// was expected. Where several problems can occur together they are collected and thrown once.

/** A list of problems about one thing as a message: `head: problem`, or `head: N <noun>:` and a `  - problem` line each. */
export function formatProblems(head: string, problems: readonly string[], noun = 'problems'): string {
  return problems.length === 1 ? `${head}: ${problems[0]}` : `${head}: ${problems.length} ${noun}:\n${problems.map((p) => `  - ${p}`).join('\n')}`;
}

/**
 * Problems collected and thrown together: the base of every lorakit error that lists them
 * (FormatError, ConfigError, LoraConfigError, WeightsError, DataError), so a caller catches
 * one class and reads `problems`, one line each.
 */
export class ProblemsError extends Error {
  override name = 'ProblemsError';
  readonly problems: readonly string[];
  constructor(message: string, problems: readonly string[]) {
    super(message);
    this.problems = problems;
  }
}

export class FormatError extends ProblemsError {
  override name = 'FormatError';
  /** The file or folder the problems are about. */
  readonly file: string;

  /** `problems`: each problem as one line, without the file prefix. */
  constructor(what: string, file: string, problems: readonly string[]) {
    super(formatProblems(`${what} ${file}`, problems), problems);
    this.file = file;
  }
}

/** Collects problems and throws them together as one FormatError. */
export class Problems {
  readonly list: string[] = [];
  constructor(
    readonly what: string,
    readonly file: string,
  ) {}

  add(problem: string): void {
    this.list.push(problem);
  }

  get empty(): boolean {
    return this.list.length === 0;
  }

  throwIfAny(): void {
    if (this.list.length > 0) throw new FormatError(this.what, this.file, this.list);
  }
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)}`;
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}

/** Where warnings go: (message, code). lorakit's Node entry sends them to process.emitWarning. */
export type WarningHandler = (message: string, code: string) => void;

let warningHandler: WarningHandler = (message, code) => console.warn(`(${code}) ${message}`);

/** Sets where warnings go (docs/ARCHITECTURE.md §Platforms and entry points). */
export function setWarningHandler(handler: WarningHandler): void {
  warningHandler = handler;
}

/** A warning (unknown config keys, a no-op unmerge, …): execution goes on. */
export function warn(message: string, code: string): void {
  warningHandler(message, code);
}
