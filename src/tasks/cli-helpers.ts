// Inputs for prediction from a file or folder, where labels are optional: a text JSONL of
// {"text", "text_pair"?, "label"?}, a folder of images (class subfolders or not), or a JSONL of
// {"image", "label"?}. Every problem names file:line and all are thrown together (DataError).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataError, describeValue, type DataIssue } from '../data/errors.js';
import { jsonlObjects } from '../data/jsonl.js';
import type { PredictInput } from './classify.js';

export interface PredictItem {
  input: PredictInput;
  /** where it came from: file:line (JSONL) or the image file */
  where: string;
  /** the label given with it (JSONL "label", or an image's class folder), if any */
  gold: string | null;
}

const IMAGE_EXT = /\.(png|jpe?g)$/i;

function labelOf(v: unknown): string | null | undefined {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string' && v !== '') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return String(v);
  return undefined;
}

/** Non-blank JSONL lines as objects; bad lines become issues. */
function readObjects(file: string, issues: DataIssue[]): { line: number; o: Record<string, unknown> }[] {
  let content: string;
  try {
    content = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new DataError([{ file, line: 0, message: `cannot read: ${(err as Error).message}` }]);
  }
  const out: { line: number; o: Record<string, unknown> }[] = [];
  for (const { line, value } of jsonlObjects(content, file, (issue) => void issues.push(issue))) out.push({ line, o: value });
  return out;
}

function imagesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...imagesUnder(p));
    else if (IMAGE_EXT.test(e.name)) out.push(p);
  }
  return out;
}

/**
 * Prediction inputs for a text model (`task` 'text': a JSONL file) or an image model ('image':
 * a folder, searched recursively, an image's class folder being its label when it sits one
 * level down; or a JSONL whose image paths are relative to its folder).
 */
export function readPredictInputs(task: 'text' | 'image', source: string): PredictItem[] {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(source);
  } catch (err) {
    throw new DataError([{ file: source, line: 0, message: `cannot read: ${(err as Error).message}` }]);
  }
  const issues: DataIssue[] = [];
  const items: PredictItem[] = [];
  if (stat.isDirectory()) {
    if (task === 'text') throw new DataError([{ file: source, line: 0, message: 'is a folder; a text model reads a JSONL file of {"text", "text_pair"?} lines' }]);
    for (const file of imagesUnder(source)) {
      const rel = path.relative(source, file).split(path.sep);
      items.push({ input: { image: file }, where: file, gold: rel.length === 2 ? rel[0]! : null });
    }
    if (items.length === 0) throw new DataError([{ file: source, line: 0, message: 'no .png/.jpg/.jpeg images in the folder' }]);
    return items;
  }
  const base = path.dirname(source);
  for (const { line, o } of readObjects(source, issues)) {
    const bad: string[] = [];
    const gold = labelOf(o['label']);
    if (gold === undefined) bad.push(`"label" must be a non-empty string or an integer, got ${describeValue(o['label'])}`);
    if (task === 'text') {
      const text = o['text'];
      const pair = o['text_pair'];
      if (typeof text !== 'string') bad.push(text === undefined ? `no "text" field${o['image'] !== undefined ? ' (an image line: the model classifies text)' : ''}` : `"text" must be a string, got ${describeValue(text)}`);
      if (pair !== undefined && pair !== null && typeof pair !== 'string') bad.push(`"text_pair" must be a string, got ${describeValue(pair)}`);
      if (bad.length === 0) items.push({ input: typeof pair === 'string' ? { text: text as string, textPair: pair } : (text as string), where: `${source}:${line}`, gold: gold ?? null });
    } else {
      const img = o['image'];
      if (typeof img !== 'string' || img === '') bad.push(img === undefined ? `no "image" field (a file path)${o['text'] !== undefined ? '; the model classifies images' : ''}` : `"image" must be a file path, got ${describeValue(img)}`);
      else if (!fs.existsSync(path.resolve(base, img))) bad.push(`image file ${path.resolve(base, img)} does not exist`);
      if (bad.length === 0) items.push({ input: { image: path.resolve(base, img as string) }, where: `${source}:${line}`, gold: gold ?? null });
    }
    for (const message of bad) issues.push({ file: source, line, message });
  }
  if (issues.length) throw new DataError(issues);
  if (items.length === 0) throw new DataError([{ file: source, line: 0, message: 'no inputs (the file is empty)' }]);
  return items;
}
