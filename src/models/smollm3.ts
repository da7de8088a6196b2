// SmolLM3 (config.json model_type "smollm3", SmolLM3ForCausalLM): LLaMA's architecture
// (llama.ts) with no rotary embedding on some layers ("NoPE"): `no_rope_layers[i]` is 1 where
// layer i uses RoPE and 0 where it does not; without it every no_rope_layer_interval-th layer
// (i + 1 divisible by it, default 4) has none. Sliding windows only with use_sliding_window:
// on the layers layer_types marks "sliding_attention" (by default the NoPE layers). Tied
// embeddings by default, rope_theta 2,000,000 by default. As transformers'
// modeling_smollm3.py and configuration_smollm3.py.
//
// Module tree = checkpoint keys: llama.ts's.
import { ConfigReader, warnUnknownKeys, type JsonObject } from './config.js';
import { llamaLike, parseLayerTypes, readLlamaCore, type LlamaConfig } from './llama.js';

/** Reads and validates a smollm3 config.json object; throws a ConfigError listing every problem. */
export function parseSmolLM3Config(json: JsonObject, where = 'config.json'): LlamaConfig {
  const r = new ConfigReader(json, where);
  const modelType = r.oneOf('model_type', ['smollm3'] as const);
  const core = readLlamaCore(r, modelType, { maxPositions: 32768, theta: 2000000 });
  const L = core.numLayers;
  const bias = r.bool('attention_bias', false);
  const mlpBias = r.bool('mlp_bias', false);
  const tieWordEmbeddings = r.bool('tie_word_embeddings', true);
  // which layers rotate q and k
  const interval = r.int('no_rope_layer_interval', 4);
  const listed = r.json['no_rope_layers'];
  r.known('no_rope_layers', 'max_window_layers'); // max_window_layers: Qwen2's, carried in SmolLM3 configs, unused
  let layerRope = Array.from({ length: L }, (_, i) => (i + 1) % interval !== 0);
  if (listed !== undefined && listed !== null) {
    if (!Array.isArray(listed) || listed.length < L || !listed.every((x) => x === 0 || x === 1 || x === true || x === false)) {
      r.fail(`"no_rope_layers" must be an array of at least ${L} (num_hidden_layers) entries, each 1 (the layer uses RoPE) or 0 (it does not), got ${JSON.stringify(listed)}`);
    } else {
      layerRope = listed.slice(0, L).map((x) => x === 1 || x === true);
    }
  }
  // sliding windows
  const useSw = r.bool('use_sliding_window', false);
  const swRaw = r.json['sliding_window'];
  r.known('sliding_window');
  const sw = swRaw === undefined || swRaw === null ? 0 : r.int('sliding_window');
  const types = parseLayerTypes(r, L);
  const layerWindows = Array.from({ length: L }, (_, i) => {
    if (!useSw || sw === 0) return 0;
    const sliding = types ? types[i] === 'sliding_attention' : !layerRope[i];
    return sliding ? sw : 0;
  });
  r.done();
  warnUnknownKeys(r);
  return { modelType, ...core, qkvBias: bias, oBias: bias, mlpBias, tieWordEmbeddings, layerWindows, qkNorm: false, layerRope, raw: json };
}

/** PEFT has no default LoRA targets for smollm3: target_modules (--targets) must be given. */
export const smollm3Family = llamaLike('smollm3', 'SmolLM3ForCausalLM', null, parseSmolLM3Config);
