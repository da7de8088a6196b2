// Qwen3 (config.json model_type "qwen3", Qwen3ForCausalLM): LLaMA's architecture (llama.ts)
// with an RMSNorm over each head of q and of k before RoPE (q_norm, k_norm, weight [head_dim]),
// head_dim from the config (default 128, not hidden_size / heads), attention_bias on q, k, v
// and o, no MLP bias, tied embeddings where the config says, and sliding-window layers where
// use_sliding_window with layer_types / max_window_layers asks (parseQwenWindows).
// As transformers' modeling_qwen3.py and configuration_qwen3.py.
//
// Module tree = checkpoint keys: llama.ts's, plus
//   model.layers.{i}.self_attn.q_norm.weight, k_norm.weight   [D]
import { ConfigReader, warnUnknownKeys, type JsonObject } from './config.js';
import { llamaLike, parseQwenWindows, readLlamaCore, type LlamaConfig } from './llama.js';

/** Reads and validates a qwen3 config.json object; throws a ConfigError listing every problem. */
export function parseQwen3Config(json: JsonObject, where = 'config.json'): LlamaConfig {
  const r = new ConfigReader(json, where);
  const modelType = r.oneOf('model_type', ['qwen3'] as const);
  const core = readLlamaCore(r, modelType, { maxPositions: 32768, theta: 10000, headDim: 128 });
  const bias = r.bool('attention_bias', false);
  const layerWindows = parseQwenWindows(r, core.numLayers);
  const tieWordEmbeddings = r.bool('tie_word_embeddings', false);
  r.done();
  warnUnknownKeys(r);
  return {
    modelType, ...core, qkvBias: bias, oBias: bias, mlpBias: false, tieWordEmbeddings, layerWindows,
    qkNorm: true, layerRope: new Array<boolean>(core.numLayers).fill(true), raw: json,
  };
}

/** PEFT's default LoRA targets for qwen3: q_proj, v_proj. */
export const qwen3Family = llamaLike('qwen3', 'Qwen3ForCausalLM', ['q_proj', 'v_proj'], parseQwen3Config);
