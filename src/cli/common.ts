// What the commands share: usage errors, flag parsers, path checks, the --config file
// (flags > config file > defaults), and one-line error messages.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, type Command, type Option } from 'commander';
import { isGgufPath } from '../io/gguf.node.js';
import { checkOutputFolder, type InputPath } from '../io/paths.node.js';
import type { InitLoraWeights } from '../lora/index.js';
import type { Interrupt } from '../train/signals.node.js';
import { previousRun } from '../train/trainer.node.js';

/** A mistake in how the command was called: one line, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * Refuses an output folder that is, by real path, one of the command's inputs (a symlink or
 * `..` alias included): a usage error, exit code 2. Every command with an output folder calls it.
 */
export function checkOutput(outFlag: string, out: string, inputs: readonly InputPath[]): void {
  try {
    checkOutputFolder(outFlag, out, inputs);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/**
 * --max-length within the model's positions: a model with learned positions (GPT-2) cannot run
 * a longer row, so examples are cut at its limit; a warning when the flag (or config file)
 * asked for more, silence when only the default did.
 */
export function clampMaxLength(cmd: Command | null, asked: number, limit: number, modelDir: string): number {
  if (asked <= limit) return asked;
  const source = cmd?.getOptionValueSource('maxLength');
  if (source !== undefined && source !== 'default') warnLine(`--max-length ${asked} is more than the ${limit} positions of ${modelDir} (n_positions); using ${limit}`);
  return limit;
}

/** `; N dropped (…): file:line, …` for a dataset that dropped examples with nothing to train, else ''. */
export function droppedNote(ds: { file: string; dropped: number; droppedLines: readonly number[] }): string {
  if (ds.dropped === 0) return '';
  const lines = ds.droppedLines.slice(0, 5).map((l) => `${ds.file}:${l}`).join(', ');
  return `; ${ds.dropped} dropped (nothing to train within --max-length: ${lines}${ds.dropped > 5 ? ', …' : ''})`;
}

/** A fresh run (no --resume) refuses a folder holding another run, before any loading. */
export function refuseOtherRun(outDir: string, resume: string | undefined): void {
  if (resume !== undefined) return;
  const prev = previousRun(outDir);
  if (prev.length) throw new UsageError(`--out ${outDir} holds another run (${prev.join(', ')}); continue it with --resume ${outDir}, or choose a new folder (or remove that one)`);
}

/** After a training command stopped by a signal: how to continue, and the signal's exit code. */
export function interruptedLine(intr: Interrupt, outDir: string): void {
  if (intr.exitCode === null) return;
  console.log(`interrupted (${intr.signal}): the latest checkpoint and the result hold the steps done; continue with --resume ${outDir}`);
  process.exitCode = intr.exitCode;
}

// ------------------------------------------------------------------ flag parsers

export function parseInteger(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n)) throw new InvalidArgumentError(`expected an integer, got "${v}"`);
  return n;
}

export function parsePositiveInt(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got "${v}"`);
  return n;
}

export function parseNonNegativeInt(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected an integer ≥ 0, got "${v}"`);
  return n;
}

export function parseNumber(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got "${v}"`);
  return n;
}

export function parsePositiveNumber(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number, got "${v}"`);
  return n;
}

export function parseNonNegativeNumber(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`expected a number ≥ 0, got "${v}"`);
  return n;
}

/** A fraction strictly between 0 and 1. */
export function parseFraction(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n > 0 && n < 1)) throw new InvalidArgumentError(`expected a number between 0 and 1 (exclusive), got "${v}"`);
  return n;
}

/** A probability in [0, 1). */
export function parseDropout(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n >= 0 && n < 1)) throw new InvalidArgumentError(`expected a number in [0, 1), got "${v}"`);
  return n;
}

export function parseChoice<T extends string>(choices: readonly T[]): (v: string) => T {
  return (v: string): T => {
    if (!(choices as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${choices.join(', ')}, got "${v}"`);
    return v as T;
  };
}

/** `q_proj,v_proj` → a list; `all-linear` as is; anything with regex syntax → a regex (full match). */
export function parseTargets(v: string): string[] | string {
  const s = v.trim();
  if (s === '') throw new UsageError('--targets is empty');
  if (s.toLowerCase() === 'all-linear') return 'all-linear';
  if (/[\\^$*+?()[\]{}|]/.test(s)) return s;
  const list = s.split(',').map((t) => t.trim()).filter((t) => t.length > 0);
  if (list.length === 0) throw new UsageError(`--targets ${JSON.stringify(v)} names no module`);
  return list;
}

export function parseInit(v: string): InitLoraWeights {
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (v === 'gaussian' || v === 'pissa' || /^pissa_niter_\d+$/.test(v)) return v as InitLoraWeights;
  throw new UsageError(`--init: expected true, false, gaussian, pissa or pissa_niter_<n>, got "${v}"`);
}

/** A repeatable flag: each use adds a value. */
export function collect(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

// ------------------------------------------------------------------ paths

export function requireFile(p: string, what: string): void {
  if (!existsSync(p)) throw new UsageError(`${what} ${p} does not exist`);
  if (!statSync(p).isFile()) throw new UsageError(`${what} ${p} is not a file`);
}

export function requireDir(p: string, what: string): void {
  if (!existsSync(p)) throw new UsageError(`${what} ${p} does not exist`);
  if (!statSync(p).isDirectory()) throw new UsageError(`${what} ${p} is not a folder`);
}

/** A Hugging Face model folder (config.json, weights): "not a model folder: …" otherwise. */
export function requireModelFolder(p: string): void {
  if (!existsSync(p)) throw new UsageError(`model folder ${p} does not exist`);
  if (!statSync(p).isDirectory()) {
    if (isGgufPath(p)) return; // a GGUF model file (docs/ARCHITECTURE.md §GGUF)
    throw new UsageError(`not a model folder: ${p} is a file`);
  }
  if (!existsSync(join(p, 'config.json'))) {
    const hint = existsSync(join(p, 'adapter_config.json')) ? ' (it is an adapter folder: pass it as --adapter)' : '';
    throw new UsageError(`not a model folder: ${p} has no config.json${hint}`);
  }
}

/** A PEFT (or mlx-lm) adapter folder. */
export function requireAdapterFolder(p: string): void {
  if (!existsSync(p)) throw new UsageError(`adapter folder ${p} does not exist`);
  if (!statSync(p).isDirectory()) throw new UsageError(`not an adapter folder: ${p} is a file`);
  if (!existsSync(join(p, 'adapter_config.json'))) {
    const hint = existsSync(join(p, 'config.json')) ? ' (it is a model folder)' : '';
    throw new UsageError(`not an adapter folder: ${p} has no adapter_config.json${hint}`);
  }
}

/** The value of a required option that may come from a flag or the config file. */
export function required<T>(value: T | undefined, flag: string): T {
  if (value === undefined || value === null) throw new UsageError(`missing ${flag} (give the flag, or set it in the --config file)`);
  return value;
}

// ------------------------------------------------------------------ config files

/** Reads a YAML or JSON options file: a mapping of option names to values. */
export async function readOptionsFile(file: string): Promise<Record<string, unknown>> {
  requireFile(file, 'config file');
  const text = readFileSync(file, 'utf8');
  // yaml is many modules: loaded only when a YAML file is read
  const parseYaml = file.endsWith('.json') ? null : (await import('yaml')).parse;
  let value: unknown;
  try {
    value = parseYaml === null ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new UsageError(`config file ${file} is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new UsageError(`config file ${file} must hold a mapping of option names to values, got ${Array.isArray(value) ? 'a list' : typeof value}`);
  return value as Record<string, unknown>;
}

function camel(key: string): string {
  return key.replace(/[-_]+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
}

function takesValue(o: Option): boolean {
  return o.required || o.optional;
}

/**
 * Applies the --config file of `cmd`: each key (kebab-case, snake_case or camelCase flag name)
 * sets its option unless the flag was given. Values go through the flag's own parser, so a bad
 * value is reported like a bad flag. Unknown keys are a warning naming them.
 */
export async function applyConfigFile(cmd: Command, warn: (line: string) => void): Promise<void> {
  const file = cmd.getOptionValue('config') as string | undefined;
  if (file === undefined) return;
  const values = await readOptionsFile(file);
  const unknown: string[] = [];
  for (const [key, raw] of Object.entries(values)) {
    let attr = camel(key);
    if (attr === 'config') {
      unknown.push(key);
      continue;
    }
    // `mask-prompt: false` and `no-mask-prompt: true` both mean --no-mask-prompt
    let negated = false;
    const named = (a: string): Option[] => cmd.options.filter((o) => o.attributeName() === a);
    if (named(attr).length === 0 && /^no[A-Z]/.test(attr)) {
      const positive = attr[2]!.toLowerCase() + attr.slice(3);
      if (named(positive).some((o) => !takesValue(o))) {
        attr = positive;
        negated = true;
      }
    }
    const opts = named(attr);
    const opt = opts.find((o) => !o.negate) ?? opts[0];
    if (!opt) {
      unknown.push(key);
      continue;
    }
    if (cmd.getOptionValueSource(attr) === 'cli') continue;
    const where = `config file ${file}: ${key}`;
    let value: unknown;
    if (!takesValue(opt)) {
      if (typeof raw !== 'boolean') throw new UsageError(`${where} must be true or false, got ${JSON.stringify(raw)}`);
      value = negated ? !raw : raw;
    } else {
      const items = Array.isArray(raw) ? raw : [raw];
      if (Array.isArray(raw) && opt.parseArg !== collect && !opt.variadic) throw new UsageError(`${where} must be a single value, got a list`);
      let acc: unknown = undefined;
      for (const item of items) {
        if (item === null || (typeof item === 'object' && item !== null)) throw new UsageError(`${where} must be a string or number, got ${JSON.stringify(item)}`);
        const s = String(item);
        try {
          acc = opt.parseArg ? opt.parseArg(s, acc) : s;
        } catch (e) {
          throw new UsageError(`${where}: ${(e as Error).message}`);
        }
      }
      value = acc;
    }
    cmd.setOptionValueWithSource(attr, value, 'config');
  }
  if (unknown.length) warn(`config file ${file}: unknown key(s) ignored: ${unknown.join(', ')}`);
}

/** The one of two exclusive options to use: a flag beats the config file; the same source twice is an error. */
export function exclusive(cmd: Command, a: string, b: string, flagA: string, flagB: string): 'a' | 'b' | null {
  const sa = cmd.getOptionValueSource(a);
  const sb = cmd.getOptionValueSource(b);
  const ga = sa === 'cli' || sa === 'config';
  const gb = sb === 'cli' || sb === 'config';
  if (ga && gb) {
    if (sa === sb) throw new UsageError(`give ${flagA} or ${flagB}, not both`);
    return sa === 'cli' ? 'a' : 'b';
  }
  return ga ? 'a' : gb ? 'b' : null;
}

/** True when the option was set by a flag or the config file (not a default). */
export function given(cmd: Command, attr: string): boolean {
  const s = cmd.getOptionValueSource(attr);
  return s === 'cli' || s === 'config';
}

// ------------------------------------------------------------------ messages

/**
 * One line for an error: multi-line library messages ("where: N problems:" then one problem
 * per line) become "where: first problem; second; third (and N more)".
 */
export function oneLine(message: string, maxProblems = 3): string {
  const lines = message.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  if (lines.length <= 1) return lines[0] ?? message;
  const head = lines[0]!.replace(/:?\s*\d+ problems?(\(s\))?( in the dataset)?( with the weights)?:$/, '').replace(/:$/, '');
  const problems = lines.slice(1).map((l) => l.replace(/^-\s+/, ''));
  const shown = problems.slice(0, maxProblems).join('; ');
  const more = problems.length > maxProblems ? ` (and ${problems.length - maxProblems} more)` : '';
  return head ? `${head}: ${shown}${more}` : `${shown}${more}`;
}

export { commas } from '../io/format.js';

/** Bytes as "12.3 MiB". */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
}

/** What a closed stdout (EPIPE, e.g. `| head`) does: end the command (generate), or not (train keeps training and saving). */
export const stdoutClosed = { exit: true };

/** Where warnings go: stderr, one line each, prefixed. */
export function warnLine(line: string): void {
  process.stderr.write(`lorakit: warning: ${line}\n`);
}
