// What the classification commands share (train --task classify, eval --task classify,
// predict): paths that may be a file or a folder, and a classifier folder with its adapter.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EncoderClassifier } from '../models/encoder.js';
import { loadClassifier } from '../models/encoder-load.node.js';
import { loadClassifierWithAdapter, preprocessorFor, type ClassifierMetrics, type ClassifyPreprocessor } from '../tasks/classify.js';
import { UsageError, oneLine, requireAdapterFolder, requireModelFolder, warnLine } from './common.js';
import { parseAdapterSpecs } from './load.js';

/** A data file or folder (text JSONL, image folder per class, image JSONL). */
export function requirePath(p: string, what: string): void {
  if (!existsSync(p)) throw new UsageError(`${what} ${p} does not exist`);
}

/** A model folder described from its config.json ("bert, 2 layers, hidden 32"), checked to be a model folder. */
export function describeModelFolder(modelDir: string): string {
  requireModelFolder(modelDir);
  let c: Record<string, unknown> = {};
  try {
    c = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  } catch {
    // the loader reports an unreadable config.json
  }
  const parts = [String(c['model_type'] ?? 'unknown model_type')];
  if (typeof c['num_hidden_layers'] === 'number') parts.push(`${c['num_hidden_layers']} layers`);
  if (typeof c['hidden_size'] === 'number') parts.push(`hidden ${c['hidden_size']}`);
  return parts.join(', ');
}

const f4 = (x: number): string => (Number.isFinite(x) ? x.toFixed(4) : '–');

/** "loss 0.3120, accuracy 0.8750, macro-F1 0.8730". */
export function metricsLine(m: ClassifierMetrics): string {
  return `loss ${f4(m.loss)}, accuracy ${f4(m.accuracy)}, macro-F1 ${f4(m.macroF1)}`;
}

/** A table of per-label precision, recall, F1 and support, then the confusion matrix (rows: gold, columns: predicted). */
export function perLabelLines(m: ClassifierMetrics): string[] {
  const labels = m.perLabel.map((p) => p.label);
  const w = Math.max(5, ...labels.map((l) => l.length));
  const lines = [`${'label'.padEnd(w)}  precision  recall  F1      support`];
  for (const p of m.perLabel) lines.push(`${p.label.padEnd(w)}  ${f4(p.precision).padEnd(9)}  ${f4(p.recall).padEnd(6)}  ${f4(p.f1).padEnd(6)}  ${p.support}`);
  const cw = Math.max(4, ...labels.map((l) => l.length), ...m.confusion.flat().map((n) => String(n).length));
  lines.push(`confusion (rows: gold, columns: predicted)`);
  lines.push(`${''.padEnd(w)}  ${labels.map((l) => l.padStart(cw)).join(' ')}`);
  m.confusion.forEach((row, i) => lines.push(`${labels[i]!.padEnd(w)}  ${row.map((n) => String(n).padStart(cw)).join(' ')}`));
  return lines;
}

export interface OpenClassifier {
  model: EncoderClassifier;
  pre: ClassifyPreprocessor;
  /** the adapter folder loaded, if any */
  adapter: string | null;
}

/**
 * A classification model folder, with at most one adapter (`--adapter DIR`; its labels.json
 * sizes the head). An adapter that does not fit names the folder and the first problem.
 */
export function openClassifier(modelDir: string, adapters: readonly string[] | undefined): OpenClassifier {
  requireModelFolder(modelDir);
  const specs = parseAdapterSpecs(adapters);
  if (specs.length > 1) throw new UsageError(`classification takes one --adapter, got ${specs.length}`);
  const adapter = specs[0]?.dir ?? null;
  if (adapter === null) {
    const model = loadClassifier(modelDir, { warn: warnLine });
    return { model, pre: preprocessorFor(model, modelDir), adapter };
  }
  requireAdapterFolder(adapter);
  try {
    const { model, preprocessor } = loadClassifierWithAdapter(modelDir, adapter);
    return { model, pre: preprocessor, adapter };
  } catch (e) {
    // the base model's own problems are reported as the loader words them
    if (!(e as Error).message.includes(adapter)) throw e;
    const msg = oneLine((e as Error).message, 1).replace(/^loadAdapter [^:]*: /, '');
    const fit = /has shape|missing tensor|has no module|is unexpected|not a Linear/.test(msg);
    throw new Error(fit ? `adapter ${adapter} does not fit model ${modelDir}: ${msg}` : `adapter ${adapter}: ${msg}`);
  }
}
