// Image classification data: decoding (PNG with pngjs, JPEG with jpeg-js: pure JavaScript),
// the checkpoint's preprocessor_config.json (ViTImageProcessor: RGB, resize, rescale,
// normalize), and datasets given as a folder per class or a JSONL of {"image": path, "label"}.
//
// Resizing reproduces Pillow's Image.resize(…, BILINEAR) on 8-bit images (what transformers'
// image processors call): a separable triangle filter whose support widens by the downscale
// factor, 22-bit fixed-point coefficients, horizontal pass first, each pass rounded to uint8.
import * as fs from 'node:fs';
import * as path from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { DataError, describeValue, type DataIssue } from './errors.js';
import { labelSet } from './classify.js';

/** An 8-bit RGB image, rows top to bottom, pixels interleaved [H, W, 3]. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`${file}: cannot decode the image: ${reason}`);
  }
}

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

// ---------------------------------------------------------------------------------------
// Resize (Pillow BILINEAR on uint8)

const PRECISION_BITS = 32 - 8 - 2;

/** Pillow's per-output-pixel bounds and fixed-point triangle-filter weights for one axis. */
function coefficients(inSize: number, outSize: number): { bounds: Int32Array; kk: Int32Array; ksize: number } {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 1 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      let t = Math.abs((x + xmin - center + 0.5) * ss);
      t = t < 1 ? 1 - t : 0;
      w[x] = t;
      ww += t;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? w[x]! / ww : 0;
      kk[xx * ksize + x] = Math.trunc(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { bounds, kk, ksize };
}

const clip8 = (v: number): number => {
  const x = Math.floor(v / 2 ** PRECISION_BITS);
  return x < 0 ? 0 : x > 255 ? 255 : x;
};

/** Resizes an RGB image to outW × outH like Pillow's resize(…, Image.BILINEAR). */
export function resizeBilinear(img: RgbImage, outW: number, outH: number): RgbImage {
  let cur = img;
  const half = 1 << (PRECISION_BITS - 1);
  if (outW !== cur.width) {
    const { bounds, kk, ksize } = coefficients(cur.width, outW);
    const out = new Uint8Array(outW * cur.height * 3);
    for (let y = 0; y < cur.height; y++) {
      for (let xx = 0; xx < outW; xx++) {
        const xmin = bounds[xx * 2]!;
        const xmax = bounds[xx * 2 + 1]!;
        for (let c = 0; c < 3; c++) {
          let ss = half;
          for (let x = 0; x < xmax; x++) ss += cur.data[(y * cur.width + x + xmin) * 3 + c]! * kk[xx * ksize + x]!;
          out[(y * outW + xx) * 3 + c] = clip8(ss);
        }
      }
    }
    cur = { width: outW, height: cur.height, data: out };
  }
  if (outH !== cur.height) {
    const { bounds, kk, ksize } = coefficients(cur.height, outH);
    const out = new Uint8Array(cur.width * outH * 3);
    for (let yy = 0; yy < outH; yy++) {
      const ymin = bounds[yy * 2]!;
      const ymax = bounds[yy * 2 + 1]!;
      for (let x = 0; x < cur.width; x++) {
        for (let c = 0; c < 3; c++) {
          let ss = half;
          for (let y = 0; y < ymax; y++) ss += cur.data[((y + ymin) * cur.width + x) * 3 + c]! * kk[yy * ksize + y]!;
          out[(yy * cur.width + x) * 3 + c] = clip8(ss);
        }
      }
    }
    cur = { width: cur.width, height: outH, data: out };
  }
  return cur;
}

// ---------------------------------------------------------------------------------------
// Preprocessing

export interface ImageProcessorConfig {
  doResize: boolean;
  height: number;
  width: number;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  mean: [number, number, number];
  std: [number, number, number];
}

/** ViTImageProcessor's defaults */
export const VIT_PROCESSOR_DEFAULTS: Readonly<ImageProcessorConfig> = Object.freeze({
  doResize: true,
  height: 224,
  width: 224,
  doRescale: true,
  rescaleFactor: 1 / 255,
  doNormalize: true,
  mean: [0.5, 0.5, 0.5] as [number, number, number],
  std: [0.5, 0.5, 0.5] as [number, number, number],
});

/**
 * Reads preprocessor_config.json from a model folder (ViTImageProcessor fields: do_resize,
 * size {height, width} or {shortest_edge}, resample (2 = bilinear only), do_rescale,
 * rescale_factor, do_normalize, image_mean, image_std). A folder without one gets the
 * defaults with the model's image size. Every problem is reported together.
 */
export function readImageProcessorConfig(dir: string, imageSize?: number): ImageProcessorConfig {
  const file = path.join(dir, 'preprocessor_config.json');
  const cfg: ImageProcessorConfig = { ...VIT_PROCESSOR_DEFAULTS, mean: [...VIT_PROCESSOR_DEFAULTS.mean], std: [...VIT_PROCESSOR_DEFAULTS.std] };
  if (imageSize) cfg.height = cfg.width = imageSize;
  if (!fs.existsSync(file)) return cfg;
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${file}: invalid JSON: ${(err as Error).message}`);
  }
  const problems: string[] = [];
  const bool = (k: string, d: boolean): boolean => {
    const v = j[k];
    if (v === undefined || v === null) return d;
    if (typeof v !== 'boolean') problems.push(`"${k}" must be a boolean, got ${describeValue(v)}`);
    return v === true;
  };
  const num = (k: string, d: number): number => {
    const v = j[k];
    if (v === undefined || v === null) return d;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) problems.push(`"${k}" must be a positive number, got ${describeValue(v)}`);
    return typeof v === 'number' ? v : d;
  };
  const triple = (k: string, d: [number, number, number]): [number, number, number] => {
    const v = j[k];
    if (v === undefined || v === null) return d;
    if (typeof v === 'number') return [v, v, v];
    if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number')) return v as [number, number, number];
    problems.push(`"${k}" must be a number or a list of 3 numbers (RGB), got ${JSON.stringify(v)}`);
    return d;
  };
  cfg.doResize = bool('do_resize', true);
  const size = j['size'];
  if (typeof size === 'number') cfg.height = cfg.width = size;
  else if (size && typeof size === 'object') {
    const s = size as Record<string, unknown>;
    if (typeof s['height'] === 'number' && typeof s['width'] === 'number') {
      cfg.height = s['height'];
      cfg.width = s['width'];
    } else problems.push(`"size" must be {"height", "width"} (other forms, e.g. shortest_edge with a crop, are not supported), got ${JSON.stringify(size)}`);
  }
  const resample = j['resample'];
  if (resample !== undefined && resample !== null && resample !== 2) problems.push(`"resample" ${JSON.stringify(resample)} is not supported; only 2 (bilinear)`);
  cfg.doRescale = bool('do_rescale', true);
  cfg.rescaleFactor = num('rescale_factor', 1 / 255);
  cfg.doNormalize = bool('do_normalize', true);
  cfg.mean = triple('image_mean', cfg.mean);
  cfg.std = triple('image_std', cfg.std);
  if (bool('do_center_crop', false)) problems.push('"do_center_crop": true is not supported');
  if (problems.length) throw new Error(`${file}: ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
  return cfg;
}

/** pixels [3, H, W] (channels first) = normalize(rescale(resize(img))) */
export function preprocessImage(img: RgbImage, cfg: ImageProcessorConfig): Float32Array {
  const im = cfg.doResize && (img.width !== cfg.width || img.height !== cfg.height) ? resizeBilinear(img, cfg.width, cfg.height) : img;
  const { width: W, height: H } = im;
  const out = new Float32Array(3 * H * W);
  const f = Math.fround;
  // transformers rescales in float64 and casts to float32, then normalizes in float32
  const r = cfg.doRescale ? cfg.rescaleFactor : 1;
  for (let c = 0; c < 3; c++) {
    const m = f(cfg.doNormalize ? cfg.mean[c]! : 0);
    const s = f(cfg.doNormalize ? cfg.std[c]! : 1);
    for (let i = 0; i < H * W; i++) out[c * H * W + i] = f(f(f(im.data[i * 3 + c]! * r) - m) / s);
  }
  return out;
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
    const lines = fs.readFileSync(source, 'utf8').split('\n');
    const base = path.dirname(source);
    lines.forEach((raw, i) => {
      const line = i + 1;
      const src = raw.replace(/\r$/, '');
      if (src.trim() === '') return;
      let v: unknown;
      try {
        v = JSON.parse(src);
      } catch (err) {
        issues.push({ file: source, line, message: `invalid JSON: ${(err as Error).message}` });
        return;
      }
      if (typeof v !== 'object' || v === null || Array.isArray(v)) {
        issues.push({ file: source, line, message: `expected a JSON object, got ${describeValue(v)}` });
        return;
      }
      const o = v as Record<string, unknown>;
      const img = o['image'];
      const label = o['label'];
      const bad: string[] = [];
      if (typeof img !== 'string' || img === '') bad.push(img === undefined ? 'no "image" field (a file path)' : `"image" must be a file path, got ${describeValue(img)}`);
      if (!(typeof label === 'string' && label !== '') && !(typeof label === 'number' && Number.isInteger(label))) bad.push(label === undefined ? 'no "label" field' : `"label" must be a non-empty string or an integer, got ${describeValue(label)}`);
      if (!bad.length && !fs.existsSync(path.resolve(base, img as string))) bad.push(`image file ${path.resolve(base, img as string)} does not exist`);
      if (bad.length) {
        for (const message of bad) issues.push({ file: source, line, message });
        return;
      }
      items.push({ file: path.resolve(base, img as string), label: String(label), where: `${source}:${line}` });
    });
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
