// Image classification data: the checkpoint's preprocessor_config.json (ViTImageProcessor: RGB, resize, rescale,
// normalize). Decoding files and listing datasets (a folder per class or a JSONL of
// {"image": path, "label"}) are in images.node.ts.
//
// Resizing reproduces Pillow's Image.resize(…, BILINEAR) on 8-bit images (what transformers'
// image processors call): a separable triangle filter whose support widens by the downscale
// factor, 22-bit fixed-point coefficients, horizontal pass first, each pass rounded to uint8.
import { ProblemsError, formatProblems } from '../io/errors.js';
import { describeValue } from './errors.js';

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
 * A preprocessor_config.json object (`file` names it in messages; ViTImageProcessor fields:
 * do_resize, size {height, width} or {shortest_edge}, resample (2 = bilinear only),
 * do_rescale, rescale_factor, do_normalize, image_mean, image_std). No object (a folder
 * without one) gives the defaults with the model's image size. Every problem is reported together.
 */
export function parseImageProcessorConfig(j: Record<string, unknown> | undefined, file: string, imageSize?: number): ImageProcessorConfig {
  const cfg: ImageProcessorConfig = { ...VIT_PROCESSOR_DEFAULTS, mean: [...VIT_PROCESSOR_DEFAULTS.mean], std: [...VIT_PROCESSOR_DEFAULTS.std] };
  if (imageSize) cfg.height = cfg.width = imageSize;
  if (!j) return cfg;
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
  if (problems.length) throw new ProblemsError(formatProblems(file, problems, 'problem(s)'), problems);
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
