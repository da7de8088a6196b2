// The training loop in Node: train() with a run folder on disk (checkpoints written atomically,
// metrics.jsonl, loss.svg, report.md), checkpoints read back for resume, the progress bar and
// peak RSS. The loop itself is platform-neutral (trainer.ts) and takes these as its host.
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Batch } from '../data/batch.js';
import { recoverAtomicWrites, writeDirAtomic, writeFileAtomicSync, type FileData } from '../io/atomic.node.js';
import { realPathOf } from '../io/paths.node.js';
import { createProgress } from './progress.node.js';
import { runReport, train as trainLoop, type BatchCounts, type RunFolder, type TrainArgs, type TrainHost, type TrainOptions, type TrainResult } from './trainer.js';

const STEP_DIR = /^step-(\d+)$/;

/** The checkpoint folder a resume path names: the folder itself, or a run folder's latest. */
export function resolveCheckpoint(path: string): string {
  const p = resolve(path);
  if (existsSync(join(p, 'trainer_state.json'))) return p;
  const dir = existsSync(join(p, 'checkpoints')) ? join(p, 'checkpoints') : p;
  const steps = existsSync(dir) ? readdirSync(dir).filter((n) => STEP_DIR.test(n)).sort() : [];
  if (steps.length === 0) throw new Error(`resume: ${path} is not a checkpoint (no trainer_state.json) and holds no checkpoints/step-* folders`);
  return join(dir, steps[steps.length - 1]!);
}

/** A checkpoint's files, for resume. */
export function readCheckpoint(path: string): { dir: string; files: Map<string, Uint8Array> } {
  const dir = resolveCheckpoint(path);
  const files = new Map<string, Uint8Array>();
  for (const name of ['trainer_state.json', 'trainable.safetensors', 'optimizer.safetensors']) files.set(name, readFileSync(join(dir, name)));
  return { dir, files };
}

/**
 * What a folder holds of an earlier run: its checkpoints and best/ (what a second run would mix
 * with its own: pruning, "latest", resume); empty when none. A run killed before its first
 * checkpoint left nothing to resume, so its metrics rows do not count.
 */
export function previousRun(dir: string): string[] {
  const found: string[] = [];
  const ckpts = join(dir, 'checkpoints');
  const steps = existsSync(ckpts) ? readdirSync(ckpts).filter((n) => STEP_DIR.test(n)).sort() : [];
  if (steps.length) found.push(`checkpoints/${steps[steps.length - 1]}`);
  if (existsSync(join(dir, 'best'))) found.push('best/');
  return found;
}

/**
 * The metrics rows of a log up to `step`. A torn last line (a kill while appending, so no
 * newline after it) is dropped: rows are appended before their checkpoint is written, so it
 * belongs to a step past every checkpoint. Any other bad line is an error naming file and line.
 */
export function metricsRowsUpTo(file: string, step: number, log: (line: string) => void = () => {}): string[] {
  const text = readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const kept: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (!l) continue;
    let row: { step?: unknown };
    try {
      row = JSON.parse(l) as { step?: unknown };
    } catch (e) {
      if (i === lines.length - 1) {
        log(`${file}:${i + 1}: dropped a torn last line (written when the run was stopped)`);
        continue;
      }
      throw new Error(`resume: ${file}:${i + 1} is not a JSON row (${(e as Error).message})`);
    }
    if (typeof row.step !== 'number') throw new Error(`resume: ${file}:${i + 1} has no "step" number`);
    if (row.step <= step) kept.push(l);
  }
  return kept;
}

/**
 * A run folder on disk: metrics.jsonl appended row by row, checkpoints and report files written
 * atomically. A fresh run refuses a folder that holds another run's checkpoints or metrics
 * (mixing them would prune the new run's checkpoints and resume the wrong one); leftovers of a
 * hard kill are cleaned first (docs/ARCHITECTURE.md §Files written and signals).
 */
export function runFolder(outDir: string, opts: { log?: (line: string) => void } = {}): RunFolder {
  const path = resolve(outDir);
  const metricsFile = join(path, 'metrics.jsonl');
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const recover = (): void => {
    for (const d of [path, join(path, 'checkpoints')]) for (const l of recoverAtomicWrites(d)) log(l);
  };
  const refuseOtherRun = (what: string): void => {
    const prev = previousRun(path);
    if (prev.length) throw new Error(`${what}: ${outDir} holds another run (${prev.join(', ')}); continue it with resume (--resume ${outDir}), or choose a new folder (or remove that one)`);
  };
  return {
    path,
    start() {
      recover();
      refuseOtherRun('train');
      mkdirSync(path, { recursive: true });
      writeFileSync(metricsFile, '');
    },
    resumeMetrics(ckpt: string, step: number): string[] {
      mkdirSync(path, { recursive: true });
      recover();
      // the run's rows up to the checkpoint: from this folder (dropping what the interrupted
      // run wrote after it), or from the folder the checkpoint came from when resuming elsewhere
      const sourceRun = basename(dirname(ckpt)) === 'checkpoints' ? dirname(dirname(ckpt)) : dirname(ckpt);
      const here = realPathOf(sourceRun) === realPathOf(path);
      if (!here) refuseOtherRun(`resume from ${ckpt}`);
      const source = here ? metricsFile : join(sourceRun, 'metrics.jsonl');
      const kept = existsSync(source) ? metricsRowsUpTo(source, step, log) : [];
      writeFileAtomicSync(metricsFile, kept.map((l) => l + '\n').join(''));
      return kept;
    },
    appendMetric(line: string) {
      appendFileSync(metricsFile, line + '\n');
    },
    async writeCheckpoint(name: string, files: Map<string, FileData>) {
      const dir = join(path, name);
      mkdirSync(dirname(dir), { recursive: true });
      await writeDirAtomic(dir, files);
    },
    pruneCheckpoints(keep: number) {
      const dir = join(path, 'checkpoints');
      const steps = readdirSync(dir).filter((n) => STEP_DIR.test(n)).sort();
      for (const old of steps.slice(0, Math.max(0, steps.length - keep))) rmSync(join(dir, old), { recursive: true, force: true });
    },
    writeFile(name: string, text: string) {
      writeFileAtomicSync(join(path, name), text);
    },
  };
}

/** Node's host for a run: the run folder args.outDir names, checkpoint reading, the progress bar, peak RSS. */
export function nodeTrainHost(args: TrainArgs): TrainHost {
  return {
    runFolder: args.outDir ? runFolder(args.outDir) : null,
    readCheckpoint,
    progress: (totalSteps, enabled) => createProgress(totalSteps, { enabled }),
    peakMemoryBytes: () => process.resourceUsage().maxRSS * 1024,
    yieldEvents: () => new Promise<void>((r) => setImmediate(r)),
  };
}

/** train() (trainer.ts) with Node's host; parts of opts.host given replace Node's. */
export function train<B extends BatchCounts = Batch>(opts: TrainOptions<B>): Promise<TrainResult> {
  return trainLoop({ ...opts, host: { ...nodeTrainHost(opts.args), ...opts.host } });
}

/** loss.svg and report.md / report.json in the run folder. */
export function writeRunReport(outDir: string, r: TrainResult, args: TrainArgs): void {
  for (const [name, text] of runReport(r, args)) writeFileAtomicSync(join(outDir, name), text);
}
