// Convolution kernels (im2col / col2im: native against ref, col2im as im2col's adjoint),
// image decoding and preprocessing (Pillow-exact bilinear resize against the PyTorch fixture),
// classification data (JSONL, pairs with token types, labels) and their error messages.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { refBackend } from '../../src/backend/index.js';
import { nativeBackend } from '../../src/backend/native/select.js';
import type { PatchArgs } from '../../src/backend/types.js';
import { patchGrid } from '../../src/backend/ref/conv.js';
import { DataError } from '../../src/data/errors.js';
import { ClassifyBatches, encodeTextExamples, labelSet } from '../../src/data/classify.js';
import { pairTokenizerFromFolder, readTextClassification } from '../../src/data/classify.node.js';
import { decodeImage, listImageDataset, loadImageExamples, readImage, readImageProcessorConfig } from '../../src/data/images.node.js';
import { preprocessImage, resizeBilinear } from '../../src/data/images.js';
import { SafetensorsFile } from '../../src/io/safetensors.node.js';
import { Rng } from '../../src/tensor/rng.js';
import { writeWordPieceTokenizer } from '../../src/tasks/synthetic.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lorakit-encdata-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function rand(n: number, rng: Rng): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = rng.normal();
  return x;
}

const SHAPES: PatchArgs[] = [
  { B: 2, C: 3, H: 16, W: 16, KH: 4, KW: 4, SH: 4, SW: 4 }, // ViT patches
  { B: 1, C: 2, H: 7, W: 9, KH: 3, KW: 2, SH: 2, SW: 3 }, // odd sizes, leftover rows/columns
  { B: 3, C: 1, H: 6, W: 5, KH: 3, KW: 3, SH: 1, SW: 1 }, // overlapping patches (scatter-add)
];

describe('im2col / col2im', () => {
  for (const a of SHAPES) {
    const { OH, OW } = patchGrid(a);
    const rows = a.B * OH * OW;
    const K = a.C * a.KH * a.KW;
    it(`ref: col2im is the adjoint of im2col (${JSON.stringify(a)})`, () => {
      const rng = new Rng(1);
      const img = rand(a.B * a.C * a.H * a.W, rng);
      const dcols = rand(rows * K, rng);
      const cols = new Float32Array(rows * K);
      refBackend.im2col(cols, img, a);
      const dimg = new Float32Array(img.length);
      refBackend.col2im(dimg, dcols, a);
      // <im2col(x), y> = <x, col2im(y)>
      let l = 0;
      let r = 0;
      for (let i = 0; i < cols.length; i++) l += cols[i]! * dcols[i]!;
      for (let i = 0; i < img.length; i++) r += img[i]! * dimg[i]!;
      assert.ok(Math.abs(l - r) < 1e-3 * Math.max(1, Math.abs(l)), `${l} vs ${r}`);
      // one known entry: row (b=0, oh=1, ow=0), column (c=0, kh=1, kw=1) is img[0, 0, SH + 1, 1]
      if (OH > 1) assert.equal(cols[(1 * OW) * K + (1 * a.KW + 1)], img[(a.SH + 1) * a.W + 1]);
    });
    it(`native equals ref (${JSON.stringify(a)})`, (t) => {
      const nb = nativeBackend();
      if (!nb) return t.skip('native addon not built');
      assert.ok(!nb.missing.includes('im2col') && !nb.missing.includes('col2im'), 'the addon exports im2col and col2im');
      const rng = new Rng(2);
      const img = rand(a.B * a.C * a.H * a.W, rng);
      const c1 = new Float32Array(rows * K).fill(7);
      const c2 = new Float32Array(rows * K).fill(-7);
      refBackend.im2col(c1, img, a);
      nb.im2col(c2, img, a);
      assert.deepEqual(c2, c1);
      const dcols = rand(rows * K, rng);
      const base = rand(img.length, rng);
      const d1 = base.slice();
      const d2 = base.slice();
      refBackend.col2im(d1, dcols, a);
      nb.col2im(d2, dcols, a);
      let m = 0;
      for (let i = 0; i < d1.length; i++) m = Math.max(m, Math.abs(d1[i]! - d2[i]!));
      assert.ok(m <= 1e-6, `col2im differs by ${m} (it must add into dimg)`);
    });
  }
});

describe('images', () => {
  const dir = path.join(ROOT, 'tests/fixtures/encoders/vit');

  it('preprocessing (decode, Pillow bilinear resize, rescale, normalize) equals transformers on the fixture images', () => {
    const cfg = readImageProcessorConfig(dir, 16);
    assert.deepEqual(cfg.mean, [0.485, 0.456, 0.406]);
    const f = SafetensorsFile.open(path.join(dir, 'reference.safetensors'));
    const px = f.tensor('pixel_values').toF32Array();
    f.close();
    for (let i = 0; i < 2; i++) {
      const p = preprocessImage(readImage(path.join(dir, `image${i}.png`)), cfg);
      let m = 0;
      for (let j = 0; j < p.length; j++) m = Math.max(m, Math.abs(p[j]! - px[i * p.length + j]!));
      assert.ok(m <= 1e-6, `image${i}: pixel values differ by ${m}`);
    }
  });

  it('resize keeps a constant image constant and gets the size right', () => {
    const img = { width: 13, height: 5, data: new Uint8Array(13 * 5 * 3).fill(77) };
    const r = resizeBilinear(img, 4, 9);
    assert.equal(r.width, 4);
    assert.equal(r.height, 9);
    assert.ok(r.data.every((v) => v === 77));
  });

  it('decodes JPEG and PNG with alpha to RGB', () => {
    const w = 8;
    const h = 6;
    const rgba = Buffer.alloc(w * h * 4);
    for (let i = 0; i < w * h; i++) rgba.set([200, 100, 50, 255], i * 4);
    const jpg = jpeg.encode({ data: rgba, width: w, height: h }, 95).data;
    const img = decodeImage(jpg, 'x.jpg');
    assert.equal(img.width, w);
    assert.equal(img.height, h);
    assert.ok(Math.abs(img.data[0]! - 200) <= 3 && Math.abs(img.data[1]! - 100) <= 3 && Math.abs(img.data[2]! - 50) <= 3, `decoded ${img.data.subarray(0, 3).join(',')}`);
    const png = new PNG({ width: w, height: h });
    rgba.copy(png.data);
    png.data[3] = 0; // transparent: alpha is dropped, the colour stays (PIL convert("RGB"))
    const p = decodeImage(PNG.sync.write(png), 'x.png');
    assert.deepEqual([...p.data.subarray(0, 3)], [200, 100, 50]);
  });

  it('an image that does not decode is an error naming the file (and where it is listed)', () => {
    const ds = path.join(tmp, 'imgs');
    fs.mkdirSync(path.join(ds, 'cat'), { recursive: true });
    fs.mkdirSync(path.join(ds, 'dog'), { recursive: true });
    const png = new PNG({ width: 4, height: 4 });
    fs.writeFileSync(path.join(ds, 'cat', 'a.png'), PNG.sync.write(png));
    fs.writeFileSync(path.join(ds, 'dog', 'broken.png'), Buffer.from('this is not a png'));
    fs.writeFileSync(path.join(ds, 'dog', 'cut.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16]));
    const { items, labels } = listImageDataset(ds);
    assert.deepEqual(labels, ['cat', 'dog']);
    const cfg = readImageProcessorConfig(dir, 16);
    assert.throws(
      () => loadImageExamples(items, cfg, labels),
      (e: Error) => e instanceof DataError && e.message.includes(path.join(ds, 'dog', 'broken.png')) && e.message.includes('not a PNG or JPEG') && e.message.includes(path.join(ds, 'dog', 'cut.jpg')),
    );
    // a JSONL listing: the line is named too; an unknown label is reported with it
    const jl = path.join(ds, 'list.jsonl');
    fs.writeFileSync(jl, `${JSON.stringify({ image: 'cat/a.png', label: 'cat' })}\n${JSON.stringify({ image: 'dog/broken.png', label: 'dog' })}\n${JSON.stringify({ image: 'cat/a.png', label: 'bird' })}\n`);
    const listed = listImageDataset(jl);
    assert.throws(
      () => loadImageExamples(listed.items, cfg, ['cat', 'dog']),
      (e: Error) => e.message.includes(`${jl}:2:`) && e.message.includes('broken.png') && e.message.includes(`${jl}:3:`) && e.message.includes('"bird" of') && e.message.includes('not in the label set'),
    );
    fs.writeFileSync(jl, `{"image": "nope.png", "label": "cat"}\n{"label": 3}\n`);
    assert.throws(() => listImageDataset(jl), (e: Error) => e.message.includes(`${jl}:1:`) && e.message.includes('does not exist') && e.message.includes(`${jl}:2: no "image" field`));
  });
});

describe('text classification data', () => {
  const tokDir = path.join(tmp, 'tok');
  writeWordPieceTokenizer(tokDir, ['the', 'red', 'cat', 'sat', 'dog', 'blue']);

  it('encodes single texts and pairs as [CLS] a [SEP] b [SEP] with token types 0 … 1', () => {
    const tok = pairTokenizerFromFolder(tokDir);
    const vocab = JSON.parse(fs.readFileSync(path.join(tokDir, 'tokenizer.json'), 'utf8')).model.vocab as Record<string, number>;
    const one = tok.encodePair('The red CAT');
    assert.deepEqual(one.ids, [vocab['[CLS]'], vocab['the'], vocab['red'], vocab['cat'], vocab['[SEP]']]);
    assert.deepEqual(one.typeIds, [0, 0, 0, 0, 0]);
    const two = tok.encodePair('red cat', 'blue dog sat');
    assert.deepEqual(two.ids, [vocab['[CLS]'], vocab['red'], vocab['cat'], vocab['[SEP]'], vocab['blue'], vocab['dog'], vocab['sat'], vocab['[SEP]']]);
    assert.deepEqual(two.typeIds, [0, 0, 0, 0, 1, 1, 1, 1]);
    assert.equal(tok.padTokenId, vocab['[PAD]']);
  });

  it('reads JSONL with labels, reports every bad line with file:line', () => {
    const f = path.join(tmp, 'bad.jsonl');
    fs.writeFileSync(f, ['{"text": "red cat", "label": "a"}', '{"text": 3, "label": "a"}', '', '{"text": "x"}', 'not json', '{"text": "x", "text_pair": "y", "label": "b"}'].join('\n'));
    assert.throws(
      () => readTextClassification(f),
      (e: Error) => e instanceof DataError && e.issues.length === 4 && e.message.includes(`${f}:2: "text" must be a string`) && e.message.includes(`${f}:4: no "label"`) && e.message.includes(`${f}:5: invalid JSON`) && e.message.includes(`${f}:6: a sentence pair`),
    );
    assert.deepEqual(labelSet(['10', '9', '2']), ['2', '9', '10']);
    assert.deepEqual(labelSet(['pos', 'neg']), ['neg', 'pos']);
  });

  it('a label not in the label set, and a text pair for a model without token types, are errors naming file:line', () => {
    const tok = pairTokenizerFromFolder(tokDir);
    const f = path.join(tmp, 'pairs.jsonl');
    fs.writeFileSync(f, ['{"text": "red cat", "text_pair": "blue dog", "label": "same"}', '{"text": "red", "text_pair": "dog", "label": "maybe"}'].join('\n') + '\n');
    const ds = readTextClassification(f);
    assert.equal(ds.pairs, true);
    assert.throws(() => encodeTextExamples(ds, tok, { labels: ['same', 'different'], typeVocabSize: 2 }), (e: Error) => e.message === `${f}:2: label "maybe" is not in the label set (same, different)`);
    assert.throws(
      () => encodeTextExamples(ds, tok, { labels: ['same', 'maybe'], typeVocabSize: 1 }),
      (e: Error) => e instanceof DataError && e.issues.length === 2 && e.message.includes(`${f}:1: a text pair ("text_pair"), but the model has no token types (type_vocab_size 1)`),
    );
    const ok = encodeTextExamples(ds, tok, { labels: ['same', 'maybe'], typeVocabSize: 2 });
    assert.equal(ok.length, 2);
    assert.deepEqual([...ok[1]!.typeIds!], [0, 0, 0, 1, 1]);
  });

  it('batches: right padding with the mask and types; a seeded, resumable order', () => {
    const ex = Array.from({ length: 5 }, (_, i) => ({ label: i % 2, where: `x:${i}`, ids: Int32Array.from({ length: i + 2 }, (_, j) => j + 10), typeIds: new Int32Array(i + 2) }));
    const a = new ClassifyBatches(ex, { batchSize: 2, seed: 3, padId: 0 });
    assert.equal(a.batchesPerEpoch, 3);
    const b0 = a.next();
    assert.equal(b0.B, 2);
    const st = a.state();
    const next1 = a.next();
    const b = new ClassifyBatches(ex, { batchSize: 2, seed: 3, padId: 0 });
    b.setState(st);
    assert.deepEqual(b.next(), next1);
    const all = a.all();
    assert.deepEqual(all.map((x) => x.B), [2, 2, 1]);
    assert.equal(all[0]!.T, 3);
    assert.deepEqual([...all[0]!.attentionMask!], [1, 1, 0, 1, 1, 1]);
    assert.deepEqual([...all[0]!.ids!], [10, 11, 0, 10, 11, 12]);
  });
});
