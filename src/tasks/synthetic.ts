// Small synthetic classification data for examples, demos and tests: a BERT-style WordPiece
// tokenizer folder over a word list, and RGB images of simple shapes (circle, square,
// triangle) at random positions, sizes and colours.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import { Rng } from '../tensor/rng.js';

export const BERT_SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;

/**
 * Writes tokenizer.json (WordPiece, BertNormalizer lowercase, BertPreTokenizer, the
 * TemplateProcessing post-processor BERT checkpoints carry: [CLS] $A [SEP] / [CLS] $A [SEP] $B:1
 * [SEP]:1) and tokenizer_config.json. Ids: the five special tokens, then the words in order.
 * Returns the vocabulary size.
 */
export function writeWordPieceTokenizer(dir: string, words: readonly string[]): number {
  fs.mkdirSync(dir, { recursive: true });
  const vocab: Record<string, number> = {};
  for (const t of [...BERT_SPECIAL_TOKENS, ...words]) if (!(t in vocab)) vocab[t] = Object.keys(vocab).length;
  const special = (content: string): Record<string, unknown> => ({ id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const tok = (id: string, typeId: number): Record<string, unknown> => ({ SpecialToken: { id, type_id: typeId } });
  const seq = (id: string, typeId: number): Record<string, unknown> => ({ Sequence: { id, type_id: typeId } });
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: BERT_SPECIAL_TOKENS.map(special),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [tok('[CLS]', 0), seq('A', 0), tok('[SEP]', 0)],
      pair: [tok('[CLS]', 0), seq('A', 0), tok('[SEP]', 0), seq('B', 1), tok('[SEP]', 1)],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [vocab['[CLS]']], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [vocab['[SEP]']], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizer, null, 2) + '\n');
  const config = {
    cls_token: '[CLS]',
    do_lower_case: true,
    mask_token: '[MASK]',
    model_max_length: 512,
    pad_token: '[PAD]',
    sep_token: '[SEP]',
    tokenizer_class: 'BertTokenizer',
    unk_token: '[UNK]',
  };
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n');
  return Object.keys(vocab).length;
}

export const SHAPES = ['circle', 'square', 'triangle'] as const;
export type Shape = (typeof SHAPES)[number];

/**
 * An RGB image [size, size, 3] of one filled shape on a noisy background: random centre, size
 * (from size/5 to size/2.5 across), colour and background shade.
 */
export function shapeImage(shape: Shape, size: number, rng: Rng): Uint8Array {
  const img = new Uint8Array(size * size * 3);
  const bg = 20 + Math.floor(rng.nextFloat() * 60);
  const fg = [0, 1, 2].map(() => 140 + Math.floor(rng.nextFloat() * 115));
  const r = size * (0.2 + rng.nextFloat() * 0.2);
  const cx = r + rng.nextFloat() * (size - 2 * r);
  const cy = r + rng.nextFloat() * (size - 2 * r);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const px = x + 0.5 - cx;
      const py = y + 0.5 - cy;
      let inside: boolean;
      if (shape === 'circle') inside = px * px + py * py <= r * r;
      else if (shape === 'square') inside = Math.abs(px) <= r * 0.85 && Math.abs(py) <= r * 0.85;
      else {
        // upward triangle with its base at cy + r·0.8 and apex at cy − r
        const t = (py + r) / (1.8 * r);
        inside = t >= 0 && t <= 1 && Math.abs(px) <= t * r;
      }
      for (let c = 0; c < 3; c++) {
        const noise = Math.floor((rng.nextFloat() - 0.5) * 30);
        img[(y * size + x) * 3 + c] = Math.max(0, Math.min(255, (inside ? fg[c]! : bg) + noise));
      }
    }
  }
  return img;
}

/** Encodes an RGB image [h, w, 3] as PNG bytes. */
export function encodePng(rgb: Uint8Array, width: number, height: number): Buffer {
  const png = new PNG({ width, height });
  for (let i = 0; i < width * height; i++) {
    png.data[i * 4] = rgb[i * 3]!;
    png.data[i * 4 + 1] = rgb[i * 3 + 1]!;
    png.data[i * 4 + 2] = rgb[i * 3 + 2]!;
    png.data[i * 4 + 3] = 255;
  }
  return PNG.sync.write(png);
}
