// Models and adapters as GGUF, in llama.cpp's conventions (platform-neutral).
// docs/ARCHITECTURE.md §GGUF.
//
// Names (llama.cpp's tensor map for the llama and qwen2 architectures):
//   model.embed_tokens.weight                 token_embd.weight
//   model.layers.N.input_layernorm.weight     blk.N.attn_norm.weight
//   model.layers.N.self_attn.q_proj.weight    blk.N.attn_q.weight     (k, v: attn_k, attn_v; o_proj: attn_output)
//   model.layers.N.post_attention_layernorm   blk.N.ffn_norm.weight
//   model.layers.N.mlp.gate_proj.weight       blk.N.ffn_gate.weight   (up: ffn_up, down: ffn_down)
//   model.norm.weight                         output_norm.weight
//   lm_head.weight                            output.weight           (absent when tied: llama.cpp uses token_embd)
// Shapes: a weight [out, in] is written with ne = [in, out] (GGUF lists dimensions fastest first).
//
// Q/K row permutation (llama architecture only): Hugging Face's llama rotates the two halves of
// each head (rotate_half), llama.cpp's llama rope rotates adjacent pairs. convert_hf_to_gguf.py
// reorders the rows of q_proj and k_proj so that pairs are adjacent: within each head of size
// D, new row 2i + j ← old row j·D/2 + i (i < D/2, j ∈ {0, 1}). The same permutation applies to
// a LoRA adapter's lora_b rows (lora_a's rows are the rank, untouched). qwen2 uses NEOX rope in
// llama.cpp (halves, like Hugging Face) and is not permuted.
import { FormatError } from '../io/errors.js';
import { GGML_TYPE, QUANT_OF, blockSpec, dequantize, quantize, type GgmlTypeName } from '../io/gguf-blocks.js';
import { kv, type GgufKV, type GgufMetadata, type GgufOut, type GgufTensorInfo, type GgufTensorOut } from '../io/gguf.js';
import { safetensorsDTypeOf, type TensorInfo, type TensorSource } from '../io/safetensors.js';
import { Tokenizer, type TokenizerFiles } from '../io/tokenizer.js';
import type { JsonObject } from '../io/json.js';
import type { QuantDType } from '../tensor/quant.js';
import { Tensor, type DType } from '../tensor/tensor.js';
import { parseLlamaConfig, type LlamaConfig } from './llama.js';

/** The weight formats a model can be exported in. */
export const GGUF_EXPORT_TYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_k'] as const;
export type GgufExportType = (typeof GGUF_EXPORT_TYPES)[number];

const TYPE_OF: Record<GgufExportType, GgmlTypeName> = { f32: 'F32', f16: 'F16', bf16: 'BF16', q8_0: 'Q8_0', q4_0: 'Q4_0', q4_k: 'Q4_K' };
/** general.file_type (llama.cpp's llama_ftype) */
const FILE_TYPE: Record<GgufExportType, number> = { f32: 0, f16: 1, bf16: 32, q8_0: 7, q4_0: 2, q4_k: 14 };

/** The llama.cpp architecture of a model_type, and whether Q/K rows are permuted. */
export function ggufArch(cfg: LlamaConfig): { arch: string; permute: boolean } {
  if (cfg.modelType === 'qwen2') return { arch: 'qwen2', permute: false };
  return { arch: 'llama', permute: true };
}

const LAYER_NAMES: Record<string, string> = {
  'input_layernorm': 'attn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  'post_attention_layernorm': 'ffn_norm',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};
const GGUF_LAYER_NAMES = new Map(Object.entries(LAYER_NAMES).map(([hf, g]) => [g, hf]));

/** The GGUF name of a Hugging Face llama-family key, or undefined for a key llama.cpp has no name for. */
export function ggufName(key: string): string | undefined {
  if (key === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (key === 'model.norm.weight') return 'output_norm.weight';
  if (key === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(key);
  if (!m) return undefined;
  const g = LAYER_NAMES[m[2]!];
  return g === undefined ? undefined : `blk.${m[1]}.${g}.${m[3]}`;
}

/** The Hugging Face key of a GGUF tensor name, or undefined. */
export function hfName(name: string): string | undefined {
  if (name === 'token_embd.weight') return 'model.embed_tokens.weight';
  if (name === 'output_norm.weight') return 'model.norm.weight';
  if (name === 'output.weight') return 'lm_head.weight';
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(name);
  if (!m) return undefined;
  const hf = GGUF_LAYER_NAMES.get(m[2]!);
  return hf === undefined ? undefined : `model.layers.${m[1]}.${hf}.${m[3]}`;
}

/** How many heads a q_proj / k_proj key's rows hold (for the permutation), or 0 for other keys. */
function permuteHeads(cfg: LlamaConfig, key: string): number {
  if (/\.self_attn\.q_proj\.(weight|bias)$/.test(key)) return cfg.numHeads;
  if (/\.self_attn\.k_proj\.(weight|bias)$/.test(key)) return cfg.numKvHeads;
  return 0;
}

/**
 * Reorders the rows of a [rows, cols] matrix from Hugging Face's rotate-half layout to llama.cpp's
 * adjacent pairs, head by head (`inverse`: back). rows = nHead · D.
 */
export function permuteQK<T extends Float32Array | Uint8Array>(x: T, rows: number, cols: number, nHead: number, inverse = false): T {
  const D = rows / nHead;
  const half = D / 2;
  // rows of values, or of a quantized matrix's bytes (its rows are whole blocks)
  const out = (x instanceof Uint8Array ? new Uint8Array(x.length) : new Float32Array(x.length)) as T;
  for (let h = 0; h < nHead; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const hfRow = h * D + j * half + i;
        const ggRow = h * D + 2 * i + j;
        const [from, to] = inverse ? [ggRow, hfRow] : [hfRow, ggRow];
        out.set(x.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

function tensorOut(name: string, shape: readonly number[], type: GgmlTypeName, values: () => Float32Array): GgufTensorOut {
  const spec = blockSpec(type);
  const n = shape.reduce((a, b) => a * b, 1);
  return { name, shape, type: GGML_TYPE[type], byteLength: (n / spec.blockValues) * spec.blockBytes, data: () => checkedQuantize(name, spec, values()) };
}

/**
 * quantize, then the finiteness check after this final cast (docs/ARCHITECTURE.md §Files
 * written and signals): a finite f32 weight past the f16 range (F16, or a Q8_0/Q4 block scale)
 * would be written as Inf. The writer is atomic, so a throw here leaves no file.
 */
function checkedQuantize(name: string, spec: ReturnType<typeof blockSpec>, x: Float32Array): Uint8Array {
  const q = quantize(spec, x);
  const back = dequantize(spec, q, x.length);
  let bad = 0;
  for (let i = 0; i < back.length; i++) if (!Number.isFinite(back[i]!)) bad++;
  if (bad > 0) {
    let before = 0;
    for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i]!)) before++;
    throw new Error(`GGUF export: tensor ${name} holds ${bad} NaN/Inf value(s) as ${spec.name}${before === 0 ? ' (finite in f32, past the range of the type)' : ''}; nothing was written`);
  }
  return q;
}

/** The type a tensor is written in: 1-D tensors stay F32; rows that are not whole blocks fall back (Q4_K → Q8_0 → F16). */
function typeFor(want: GgmlTypeName, shape: readonly number[], isEmbedding: boolean): GgmlTypeName {
  if (shape.length < 2) return 'F32';
  if (want === 'F32' || want === 'F16' || want === 'BF16') return want;
  const cols = shape[shape.length - 1]!;
  // llama.cpp keeps the embedding / output matrix at 6 bits in 4-bit files
  const chain: GgmlTypeName[] = isEmbedding && (want === 'Q4_0' || want === 'Q4_K') ? ['Q6_K', 'Q8_0', 'F16'] : [want, 'Q8_0', 'F16'];
  return chain.find((t) => cols % blockSpec(t).blockValues === 0)!;
}

export interface ModelGgufInput {
  /** config.json */
  config: JsonObject;
  /** the weights under their Hugging Face keys (model.stateDict()) */
  state: ReadonlyMap<string, Tensor>;
  tokenizer: TokenizerFiles;
  type: GgufExportType;
  /** general.name */
  name?: string;
}

/** A llama-family model as a GGUF model file for llama.cpp: metadata, tokenizer and weights. */
export function modelToGguf(input: ModelGgufInput): GgufOut {
  const cfg = parseLlamaConfig(input.config, 'config.json');
  const { arch, permute } = ggufArch(cfg);
  if (cfg.rope.type !== 'default' && cfg.rope.type !== 'linear') {
    throw new FormatError('GGUF export of', input.name ?? 'the model', [`rope_scaling type "${cfg.rope.type}" cannot be exported to GGUF yet (default and linear can)`]);
  }
  if (cfg.rope.dim !== cfg.headDim) throw new FormatError('GGUF export of', input.name ?? 'the model', [`partial rotary embeddings (${cfg.rope.dim} of ${cfg.headDim}) cannot be exported to GGUF yet`]);
  const meta: [string, GgufKV][] = [
    ['general.architecture', kv.str(arch)],
    ['general.name', kv.str(input.name ?? 'model')],
    ['general.file_type', kv.u32(FILE_TYPE[input.type])],
    ['general.quantization_version', kv.u32(2)],
    [`${arch}.vocab_size`, kv.u32(cfg.vocabSize)],
    [`${arch}.context_length`, kv.u32(cfg.maxPositions)],
    [`${arch}.embedding_length`, kv.u32(cfg.hiddenSize)],
    [`${arch}.block_count`, kv.u32(cfg.numLayers)],
    [`${arch}.feed_forward_length`, kv.u32(cfg.intermediateSize)],
    [`${arch}.rope.dimension_count`, kv.u32(cfg.rope.dim)],
    [`${arch}.rope.freq_base`, kv.f32(cfg.rope.theta)],
    [`${arch}.attention.head_count`, kv.u32(cfg.numHeads)],
    [`${arch}.attention.head_count_kv`, kv.u32(cfg.numKvHeads)],
    [`${arch}.attention.layer_norm_rms_epsilon`, kv.f32(cfg.rmsNormEps)],
  ];
  if (cfg.headDim * cfg.numHeads !== cfg.hiddenSize) {
    meta.push([`${arch}.attention.key_length`, kv.u32(cfg.headDim)], [`${arch}.attention.value_length`, kv.u32(cfg.headDim)]);
  }
  if (cfg.rope.type === 'linear') meta.push([`${arch}.rope.scaling.type`, kv.str('linear')], [`${arch}.rope.scaling.factor`, kv.f32(cfg.rope.factor)]);
  meta.push(...tokenizerMetadata(input.tokenizer, cfg.vocabSize));

  const want = TYPE_OF[input.type];
  const tensors: GgufTensorOut[] = [];
  const problems: string[] = [];
  for (const [key, t] of input.state) {
    const name = ggufName(key);
    if (name === undefined) {
      problems.push(`tensor ${key} has no llama.cpp name`);
      continue;
    }
    const heads = permute ? permuteHeads(cfg, key) : 0;
    const rows = t.shape[0]!;
    const cols = t.shape.length > 1 ? t.shape[1]! : 1;
    const type = typeFor(want, t.shape, name === 'token_embd.weight' || name === 'output.weight');
    if (t.quantized && QUANT_OF[type] === t.dtype) {
      // a quantized base written in its own type: its blocks as they are (a second quantization
      // of the dequantized values could land on another grid)
      const blocks = t.data as Uint8Array;
      const rowBytes = blocks.length / rows;
      tensors.push({ name, shape: t.shape, type: GGML_TYPE[type], byteLength: blocks.length, data: () => (heads ? permuteQK(blocks, rows, rowBytes, heads) : blocks) });
      continue;
    }
    tensors.push(tensorOut(name, t.shape, type, () => {
      const v = t.toF32Array();
      return heads ? permuteQK(v, rows, cols, heads) : v;
    }));
  }
  if (problems.length) throw new FormatError('GGUF export of', input.name ?? 'the model', problems);
  return { metadata: meta, tensors };
}

/**
 * tokenizer.ggml.* for a byte-level BPE tokenizer.json (GPT-2 style): the tokens by id (added
 * tokens included, missing ids as [PADn]), their types (1 normal, 3 control for special added
 * tokens, 4 user-defined for other added tokens, 5 unused), the merges, the special token ids,
 * whether BOS/EOS are added, and the chat template. `tokenizer.ggml.pre = "gpt-2"` selects
 * llama.cpp's GPT-2 split regex, the one a ByteLevel pre-tokenizer with use_regex applies.
 */
export function tokenizerMetadata(files: TokenizerFiles, vocabSize: number): [string, GgufKV][] {
  const tj = files.tokenizerJson;
  const model = tj['model'] as JsonObject | undefined;
  const fail = (p: string): never => {
    throw new FormatError('GGUF export of the tokenizer', files.source, [p]);
  };
  if (!model || model['type'] !== 'BPE') fail(`only byte-level BPE tokenizers export to GGUF for now; tokenizer.json model type is ${JSON.stringify(model?.['type'])}`);
  const pre = tj['pre_tokenizer'] as JsonObject | null | undefined;
  if (!pre || pre['type'] !== 'ByteLevel' || pre['use_regex'] === false || pre['add_prefix_space'] === true) {
    fail(`only the GPT-2 ByteLevel pre-tokenizer (use_regex, no prefix space) exports to GGUF for now; tokenizer.json pre_tokenizer is ${JSON.stringify(pre?.['type'] ?? null)}`);
  }
  const vocab = model!['vocab'] as Record<string, number>;
  const added = (Array.isArray(tj['added_tokens']) ? tj['added_tokens'] : []) as JsonObject[];
  let n = vocabSize;
  for (const id of Object.values(vocab)) n = Math.max(n, id + 1);
  for (const a of added) n = Math.max(n, (a['id'] as number) + 1);
  const tokens: (string | undefined)[] = new Array(n);
  const types = new Array<number>(n).fill(1);
  for (const [tok, id] of Object.entries(vocab)) tokens[id] = tok;
  for (const a of added) {
    const id = a['id'] as number;
    tokens[id] = a['content'] as string;
    types[id] = a['special'] === true ? 3 : 4;
  }
  for (let i = 0; i < n; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = 5;
    }
  }
  const merges = ((model!['merges'] ?? []) as (string | string[])[]).map((m) => (Array.isArray(m) ? m.join(' ') : m));
  const tok = new Tokenizer(files);
  const meta: [string, GgufKV][] = [
    ['tokenizer.ggml.model', kv.str('gpt2')],
    ['tokenizer.ggml.pre', kv.str('gpt-2')],
    ['tokenizer.ggml.tokens', kv.strs(tokens as string[])],
    ['tokenizer.ggml.token_type', kv.i32s(types)],
    ['tokenizer.ggml.merges', kv.strs(merges)],
  ];
  if (tok.bosTokenId !== undefined) meta.push(['tokenizer.ggml.bos_token_id', kv.u32(tok.bosTokenId)]);
  if (tok.eosTokenIds[0] !== undefined) meta.push(['tokenizer.ggml.eos_token_id', kv.u32(tok.eosTokenIds[0])]);
  // a second end id (generation_config's eos_token_id list, e.g. <|im_end|>) is llama.cpp's end-of-turn token
  if (tok.eosTokenIds[1] !== undefined) meta.push(['tokenizer.ggml.eot_token_id', kv.u32(tok.eosTokenIds[1])]);
  if (tok.unkTokenId !== undefined) meta.push(['tokenizer.ggml.unknown_token_id', kv.u32(tok.unkTokenId)]);
  if (tok.padTokenId !== undefined) meta.push(['tokenizer.ggml.padding_token_id', kv.u32(tok.padTokenId)]);
  // whether encoding adds BOS / EOS, as the Hugging Face tokenizer does it
  const plain = tok.encode('a', { addSpecialTokens: false });
  const withSpecial = tok.encode('a', { addSpecialTokens: true });
  const addsBos = withSpecial.length > plain.length && withSpecial[0] !== plain[0];
  const addsEos = withSpecial.length > plain.length && withSpecial[withSpecial.length - 1] !== plain[plain.length - 1];
  meta.push(['tokenizer.ggml.add_bos_token', kv.bool(addsBos)], ['tokenizer.ggml.add_eos_token', kv.bool(addsEos)]);
  if (tok.hasChatTemplate) {
    try {
      meta.push(['tokenizer.chat_template', kv.str(tok.chatTemplate())]);
    } catch {
      // several named templates and none is the default: llama.cpp takes one string; leave it out
    }
  }
  return meta;
}

/** One LoRA adapter on one Linear: A [r, in], B [out, r], the scaling s (y += s·B·A·x). */
export interface LoraPair {
  /** the Linear's path, e.g. model.layers.0.self_attn.q_proj */
  path: string;
  A: Float32Array;
  B: Float32Array;
  r: number;
  inFeatures: number;
  outFeatures: number;
  scaling: number;
}

/**
 * A LoRA adapter as a GGUF adapter file for llama.cpp (general.type = adapter, adapter.type =
 * lora, adapter.lora.alpha). Each pair becomes blk.N.<name>.weight.lora_a with ne = [in, r]
 * and .lora_b with ne = [r, out], in F32 (or the given type). llama.cpp scales by alpha / r with
 * r read from each tensor; one alpha serves every module, so where a module's own scaling
 * differs (rank_pattern, alpha_pattern, rsLoRA) its B is multiplied by the difference.
 */
export function adapterToGguf(config: JsonObject, pairs: readonly LoraPair[], opts: { name?: string; type?: 'f32' | 'f16' | 'bf16' | 'q8_0' } = {}): GgufOut {
  const cfg = parseLlamaConfig(config, 'config.json');
  const { arch, permute } = ggufArch(cfg);
  if (pairs.length === 0) throw new FormatError('GGUF export of', opts.name ?? 'the adapter', ['the adapter has no LoRA layers']);
  const alpha = pairs[0]!.scaling * pairs[0]!.r;
  const want = TYPE_OF[opts.type ?? 'f32'];
  const tensors: GgufTensorOut[] = [];
  const problems: string[] = [];
  for (const p of pairs) {
    const key = `${p.path}.weight`;
    const name = ggufName(key);
    if (name === undefined) {
      problems.push(`${p.path} has no llama.cpp name (llama.cpp adapters cover the attention and MLP projections)`);
      continue;
    }
    const factor = (p.scaling * p.r) / alpha;
    const heads = permute ? permuteHeads(cfg, key) : 0;
    const aType = typeFor(want, [p.r, p.inFeatures], false);
    const bType = typeFor(want, [p.outFeatures, p.r], false);
    tensors.push(tensorOut(`${name}.lora_a`, [p.r, p.inFeatures], aType, () => p.A));
    tensors.push(tensorOut(`${name}.lora_b`, [p.outFeatures, p.r], bType, () => {
      let b = factor === 1 ? p.B : p.B.map((v) => v * factor);
      if (heads) b = permuteQK(b, p.outFeatures, p.r, heads);
      return b;
    }));
  }
  if (problems.length) throw new FormatError('GGUF export of', opts.name ?? 'the adapter', problems);
  return {
    metadata: [
      ['general.architecture', kv.str(arch)],
      ['general.type', kv.str('adapter')],
      ['general.name', kv.str(opts.name ?? 'adapter')],
      ['adapter.type', kv.str('lora')],
      ['adapter.lora.alpha', kv.f32(alpha)],
    ],
    tensors,
  };
}

// ---------------------------------------------------------------------------------------------
// Import: a GGUF model as a config.json object and a TensorSource under Hugging Face keys

const ARCH_MODEL_TYPE: Record<string, string> = { llama: 'llama', qwen2: 'qwen2' };

/** What import needs of a GGUF file: its metadata, its tensor list and each tensor's bytes (GgufFile). */
export interface GgufReader {
  readonly path: string;
  readonly metadata: GgufMetadata;
  readonly tensors: readonly GgufTensorInfo[];
  bytes(name: string): Uint8Array;
}

/**
 * A config.json object for a GGUF model, from llama.cpp's metadata (the reverse of modelToGguf):
 * model_type from general.architecture, sizes from <arch>.*, tie_word_embeddings when there is
 * no output.weight, attention biases when blk.0.attn_q.bias exists.
 */
export function ggufConfig(g: GgufReader): JsonObject {
  const m = g.metadata;
  const arch = m.string('general.architecture');
  const type = m.string('general.type', true);
  if (type !== undefined && type !== 'model') throw new FormatError('GGUF file', g.path, [`general.type is "${type}": this is not a model (lorakit reads adapters as PEFT folders, and writes GGUF adapters with lorakit export --adapter)`]);
  const modelType = ARCH_MODEL_TYPE[arch];
  if (!modelType) throw new FormatError('GGUF file', g.path, [`general.architecture "${arch}" is not supported (lorakit reads ${Object.keys(ARCH_MODEL_TYPE).join(', ')})`]);
  const names = new Set(g.tensors.map((t) => t.name));
  const heads = m.number(`${arch}.attention.head_count`);
  const hidden = m.number(`${arch}.embedding_length`);
  const tokens = m.strings('tokenizer.ggml.tokens', true);
  const embd = g.tensors.find((t) => t.name === 'token_embd.weight');
  const cfg: JsonObject = {
    architectures: [modelType === 'qwen2' ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'],
    model_type: modelType,
    vocab_size: m.number(`${arch}.vocab_size`, true) ?? embd?.shape[0] ?? tokens?.length ?? 0,
    hidden_size: hidden,
    intermediate_size: m.number(`${arch}.feed_forward_length`),
    num_hidden_layers: m.number(`${arch}.block_count`),
    num_attention_heads: heads,
    num_key_value_heads: m.number(`${arch}.attention.head_count_kv`, true) ?? heads,
    max_position_embeddings: m.number(`${arch}.context_length`),
    rms_norm_eps: m.number(`${arch}.attention.layer_norm_rms_epsilon`),
    rope_theta: m.number(`${arch}.rope.freq_base`, true) ?? 10000,
    hidden_act: 'silu',
    tie_word_embeddings: !names.has('output.weight'),
    torch_dtype: 'float32',
  };
  const keyLength = m.number(`${arch}.attention.key_length`, true);
  if (keyLength !== undefined && keyLength * heads !== hidden) cfg['head_dim'] = keyLength;
  const ropeDim = m.number(`${arch}.rope.dimension_count`, true);
  const headDim = keyLength ?? hidden / heads;
  if (ropeDim !== undefined && ropeDim !== headDim) throw new FormatError('GGUF file', g.path, [`${arch}.rope.dimension_count ${ropeDim} differs from the head size ${headDim} (partial rotary embeddings are not supported)`]);
  const scaling = m.string(`${arch}.rope.scaling.type`, true);
  if (scaling === 'linear') cfg['rope_scaling'] = { rope_type: 'linear', factor: m.number(`${arch}.rope.scaling.factor`) };
  else if (scaling !== undefined && scaling !== 'none') throw new FormatError('GGUF file', g.path, [`${arch}.rope.scaling.type "${scaling}" is not supported (none and linear are)`]);
  if (names.has('rope_freqs.weight')) throw new FormatError('GGUF file', g.path, ['rope_freqs.weight (llama 3.1 rope scaling) is not supported yet']);
  if (modelType === 'llama' && names.has('blk.0.attn_q.bias')) cfg['attention_bias'] = true;
  const bos = m.number('tokenizer.ggml.bos_token_id', true);
  const eos = m.number('tokenizer.ggml.eos_token_id', true);
  if (bos !== undefined) cfg['bos_token_id'] = bos;
  if (eos !== undefined) cfg['eos_token_id'] = eos;
  return cfg;
}

const TO_DTYPE: Partial<Record<GgmlTypeName, DType>> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

/**
 * The weights of a GGUF model as a TensorSource under Hugging Face keys, in one dtype: f16 or
 * bf16 when every matrix is stored so, else f32. Matrices in the quantized types `keep` lists
 * (the backend's quantTypes: what its kernels read) stay blocks (docs/ARCHITECTURE.md
 * §Quantized weights); other quantized blocks are dequantized. llama.cpp's Q/K row permutation
 * is undone for the llama architecture (on the blocks' byte rows for a kept matrix).
 */
export function ggufTensorSource(g: GgufReader, config: JsonObject, keep: readonly QuantDType[] = []): TensorSource {
  const cfg = parseLlamaConfig(config, `GGUF file ${g.path}`);
  const { permute } = ggufArch(cfg);
  const byKey = new Map<string, GgufTensorInfo>();
  const problems: string[] = [];
  for (const t of g.tensors) {
    const key = hfName(t.name);
    if (key === undefined) problems.push(`tensor "${t.name}" has no lorakit name`);
    else byKey.set(key, t);
  }
  if (problems.length) throw new FormatError('GGUF file', g.path, problems);
  const matrixTypes = new Set(g.tensors.filter((t) => t.shape.length > 1).map((t) => t.spec.name));
  const only = matrixTypes.size === 1 ? TO_DTYPE[[...matrixTypes][0]!] : undefined;
  const dtype: DType = only ?? 'f32';
  const sfDtype = safetensorsDTypeOf(dtype);
  const info = (key: string): TensorInfo => {
    const t = byKey.get(key);
    if (!t) throw new FormatError('GGUF file', g.path, [`no tensor for ${key}`]);
    return { name: key, dtype: sfDtype, shape: t.shape, file: g.path, offset: t.offset, byteLength: t.byteLength };
  };
  const tensor = (key: string): Tensor => {
    const t = byKey.get(key);
    if (!t) throw new FormatError('GGUF file', g.path, [`no tensor for ${key}`]);
    const bytes = g.bytes(t.name);
    const heads = permute ? permuteHeads(cfg, key) : 0;
    const q = QUANT_OF[t.spec.name];
    if (q && keep.includes(q) && t.shape.length === 2) {
      const rows = t.shape[0]!;
      return new Tensor(q, t.shape, heads ? permuteQK(bytes, rows, bytes.length / rows, heads, true) : bytes);
    }
    if (!heads && TO_DTYPE[t.spec.name] === dtype && dtype !== 'f32') {
      return new Tensor(dtype, t.shape, new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2));
    }
    let v = dequantize(t.spec, bytes, t.shape.reduce((a, b) => a * b, 1));
    if (heads) v = permuteQK(v, t.shape[0]!, t.shape.length > 1 ? t.shape[1]! : 1, heads, true);
    return Tensor.fromValues(v, t.shape, dtype);
  };
  const names = (): string[] => [...byKey.keys()].sort();
  return {
    names,
    has: (key) => byKey.has(key),
    info,
    tensor,
    raw: (key) => {
      const t = tensor(key);
      return { dtype: sfDtype, shape: t.shape, data: t.data };
    },
    *tensors() {
      for (const k of names()) yield [k, tensor(k)] as [string, Tensor];
    },
    close: () => undefined,
  };
}
