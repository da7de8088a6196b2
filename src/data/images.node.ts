// Image files (Node): decoding (PNG with pngjs, JPEG with jpeg-js), a model folder's
// preprocessor_config.json, and datasets given as a folder per class or a JSONL of
// {"image": path, "label"}. Resizing and normalizing are in images.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { labelSet } from './classify.js';
import { DataError, describeValue, type DataIssue } from './errors.js';
import { jsonlObjects } from './jsonl.js';
import { ImageDecodeError, parseImageProcessorConfig, preprocessImage, type ImageProcessorConfig, type RgbImage } from './images.js';

/** Decodes a PNG or JPEG (told by its first bytes) to RGB; alpha is dropped (as PIL's convert("RGB")). */
export function decodeImage(bytes: Uint8Array, file = '<image>'): RgbImage {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const isPng = buf.length >= 8 && buf.readUInt32BE(0) === 0x89504e47 && buf.readUInt32BE(4) === 0x0d0a1a0a;
  const isJpeg = buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff;
  if (!isPng && !isJpeg) throw new ImageDecodeError(file, `not a PNG or JPEG file (starts with ${[...buf.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ') || 'nothing'})`);
  let width: number;
  let height: number;
  let src: Uint8Array;
  let channels: number;
  try {
    if (isPng) {
      const png = PNG.sync.read(buf);
      width = png.width;
      height = png.height;
      src = png.data;
      channels = 4;
    } else {
      const img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 1024 });
      width = img.width;
      height = img.height;
      src = img.data;
      channels = src.length === width * height * 4 ? 4 : 3;
    }
  } catch (err) {
    throw new ImageDecodeError(file, (err as Error).message);
  }
  if (!(width > 0 && height > 0) || src.length < width * height * channels) throw new ImageDecodeError(file, `decoded ${src.length} bytes for ${width}x${height}`);
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    data[i * 3] = src[i * channels]!;
    data[i * 3 + 1] = src[i * channels + 1]!;
    data[i * 3 + 2] = src[i * channels + 2]!;
  }
  return { width, height, data };
}

/** Reads and decodes an image file; every failure names the file. */
export function readImage(file: string): RgbImage {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new ImageDecodeError(file, `cannot read: ${(err as Error).message}`);
  }
  return decodeImage(bytes, file);
}

/** Reads preprocessor_config.json from a model folder (see parseImageProcessorConfig); a folder without one gets the defaults with the model's image size. */
export function readImageProcessorConfig(dir: string, imageSize?: number): ImageProcessorConfig {
  const file = path.join(dir, 'preprocessor_config.json');
  if (!fs.existsSync(file)) return parseImageProcessorConfig(undefined, file, imageSize);
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${file}: invalid JSON: ${(err as Error).message}`);
  }
  return parseImageProcessorConfig(j, file, imageSize);
}

// ---------------------------------------------------------------------------------------
// Datasets

export interface ImageItem {
  file: string;
  label: string;
  /** where it is listed: the JSONL's file:line, or the folder */
  where: string;
}

const IMAGE_EXT = /\.(png|jpe?g)$/i;

/**
 * Lists an image dataset: a folder with one subfolder per class (the folder name is the label;
 * .png, .jpg, .jpeg files), or a JSONL file of {"image": path (relative to the JSONL's folder),
 * "label": string or integer}. Problems are thrown together with file:line.
 */
export function listImageDataset(source: string): { items: ImageItem[]; labels: string[] } {
  const issues: DataIssue[] = [];
  const items: ImageItem[] = [];
  let stat: fs.Stats;
  try {
    stat = fs.statSync(source);
  } catch (err) {
    throw new DataError([{ file: source, line: 0, message: `cannot read: ${(err as Error).message}` }]);
  }
  if (stat.isDirectory()) {
    const classes = fs.readdirSync(source).filter((n) => fs.statSync(path.join(source, n)).isDirectory()).sort();
    if (classes.length === 0) throw new DataError([{ file: source, line: 0, message: 'no class folders (expected one subfolder of images per label)' }]);
    for (const c of classes) {
      const files = fs.readdirSync(path.join(source, c)).filter((f) => IMAGE_EXT.test(f)).sort();
      if (files.length === 0) issues.push({ file: path.join(source, c), line: 0, message: 'no .png/.jpg/.jpeg images in this class folder' });
      for (const f of files) items.push({ file: path.join(source, c, f), label: c, where: path.join(source, c) });
    }
  } else {
    const base = path.dirname(source);
    for (const { line, value: o } of jsonlObjects(fs.readFileSync(source, 'utf8'), source, (issue) => void issues.push(issue))) {
      const img = o['image'];
      const label = o['label'];
      const bad: string[] = [];
      if (typeof img !== 'string' || img === '') bad.push(img === undefined ? 'no "image" field (a file path)' : `"image" must be a file path, got ${describeValue(img)}`);
      if (!(typeof label === 'string' && label !== '') && !(typeof label === 'number' && Number.isInteger(label))) bad.push(label === undefined ? 'no "label" field' : `"label" must be a non-empty string or an integer, got ${describeValue(label)}`);
      if (!bad.length && !fs.existsSync(path.resolve(base, img as string))) bad.push(`image file ${path.resolve(base, img as string)} does not exist`);
      if (bad.length) {
        for (const message of bad) issues.push({ file: source, line, message });
        continue;
      }
      items.push({ file: path.resolve(base, img as string), label: String(label), where: `${source}:${line}` });
    }
  }
  if (issues.length) throw new DataError(issues);
  if (items.length === 0) throw new DataError([{ file: source, line: 0, message: 'no images' }]);
  return { items, labels: labelSet(items.map((i) => i.label)) };
}

/**
 * Decodes and preprocesses every image, mapping labels to class indices. Every undecodable
 * image and unknown label is reported together (naming the file, and where it is listed).
 */
export function loadImageExamples(items: readonly ImageItem[], cfg: ImageProcessorConfig, labels: readonly string[]): { label: number; where: string; pixels: Float32Array }[] {
  const index = new Map(labels.map((l, i) => [l, i]));
  const issues: DataIssue[] = [];
  const out: { label: number; where: string; pixels: Float32Array }[] = [];
  for (const it of items) {
    const [file, line] = splitWhere(it.where);
    const label = index.get(it.label);
    if (label === undefined) {
      issues.push({ file, line, message: `label ${JSON.stringify(it.label)} of ${it.file} is not in the label set (${labels.join(', ')})` });
      continue;
    }
    try {
      out.push({ label, where: it.file, pixels: preprocessImage(readImage(it.file), cfg) });
    } catch (err) {
      if (!(err instanceof ImageDecodeError)) throw err;
      issues.push({ file, line, message: err.message });
    }
  }
  if (issues.length) throw new DataError(issues);
  return out;
}

function splitWhere(where: string): [string, number] {
  const m = /^(.*):(\d+)$/.exec(where);
  return m ? [m[1]!, Number(m[2])] : [where, 0];
}
