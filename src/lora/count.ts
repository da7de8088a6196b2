// Parameter counts from config.json alone (no weights allocated): the modules of a
// llama-style (llama, mistral, qwen2) or GPT-2 model are listed with their shapes, the
// adapter config is matched against them exactly as getPeftModel does, and
//   trainable = Σ_targets r·(in + out) (+ out for DoRA's magnitude, + out for lora_bias)
//             + modules_to_save + biases made trainable by `bias`
//   base      = every weight of the model (tied embeddings counted once)
import type { LoraConfig, LoraConfigInput } from './config.js';
import { parseLoraConfig } from './config.js';
import { planTargets, rankAndAlpha } from './match.js';

interface Param {
  name: string;
  size: number;
}

interface ModuleShape {
  name: string;
  linear: boolean;
  in?: number;
  out?: number;
  params: Param[];
}

function num(cfg: Record<string, unknown>, key: string, fallback?: number): number {
  const v = cfg[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`countLoraParameters: config.json needs a number "${key}", got ${JSON.stringify(cfg[key])}`);
  return v;
}

function linear(name: string, inF: number, outF: number, bias: boolean): ModuleShape {
  const params: Param[] = [{ name: `${name}.weight`, size: inF * outF }];
  if (bias) params.push({ name: `${name}.bias`, size: outF });
  return { name, linear: true, in: inF, out: outF, params };
}

function other(name: string, params: [string, number][]): ModuleShape {
  return { name, linear: false, params: params.map(([n, size]) => ({ name: `${name}.${n}`, size })) };
}

/** The modules (leaves with parameters, plus containers) of a model described by config.json. */
export function modulesFromConfig(cfg: Record<string, unknown>): ModuleShape[] {
  const type = cfg.model_type;
  const mods: ModuleShape[] = [];
  if (type === 'gpt2') {
    const C = num(cfg, 'n_embd');
    const L = num(cfg, 'n_layer');
    const V = num(cfg, 'vocab_size');
    const P = num(cfg, 'n_positions');
    const inner = typeof cfg.n_inner === 'number' ? cfg.n_inner : 4 * C;
    mods.push(other('transformer.wte', [['weight', V * C]]), other('transformer.wpe', [['weight', P * C]]));
    for (let i = 0; i < L; i++) {
      const p = `transformer.h.${i}`;
      mods.push(
        other(`${p}.ln_1`, [['weight', C], ['bias', C]]),
        { name: `${p}.attn`, linear: false, params: [] },
        linear(`${p}.attn.c_attn`, C, 3 * C, true),
        linear(`${p}.attn.c_proj`, C, C, true),
        other(`${p}.ln_2`, [['weight', C], ['bias', C]]),
        { name: `${p}.mlp`, linear: false, params: [] },
        linear(`${p}.mlp.c_fc`, C, inner, true),
        linear(`${p}.mlp.c_proj`, inner, C, true),
      );
    }
    mods.push(other('transformer.ln_f', [['weight', C], ['bias', C]]));
    // lm_head is tied to wte in GPT2LMHeadModel: no parameters of its own
    mods.push({ name: 'lm_head', linear: false, params: [] });
    return mods;
  }
  if (type === 'llama' || type === 'mistral' || type === 'qwen2') {
    const C = num(cfg, 'hidden_size');
    const L = num(cfg, 'num_hidden_layers');
    const V = num(cfg, 'vocab_size');
    const H = num(cfg, 'num_attention_heads');
    const KV = num(cfg, 'num_key_value_heads', H);
    const D = num(cfg, 'head_dim', C / H);
    const F = num(cfg, 'intermediate_size');
    const attnBias = type === 'qwen2' ? true : cfg.attention_bias === true;
    const mlpBias = cfg.mlp_bias === true;
    const tied = cfg.tie_word_embeddings === true;
    mods.push(other('model.embed_tokens', [['weight', V * C]]));
    for (let i = 0; i < L; i++) {
      const p = `model.layers.${i}`;
      mods.push(
        other(`${p}.input_layernorm`, [['weight', C]]),
        { name: `${p}.self_attn`, linear: false, params: [] },
        linear(`${p}.self_attn.q_proj`, C, H * D, attnBias),
        linear(`${p}.self_attn.k_proj`, C, KV * D, attnBias),
        linear(`${p}.self_attn.v_proj`, C, KV * D, attnBias),
        linear(`${p}.self_attn.o_proj`, H * D, C, type === 'qwen2' ? false : attnBias),
        other(`${p}.post_attention_layernorm`, [['weight', C]]),
        { name: `${p}.mlp`, linear: false, params: [] },
        linear(`${p}.mlp.gate_proj`, C, F, mlpBias),
        linear(`${p}.mlp.up_proj`, C, F, mlpBias),
        linear(`${p}.mlp.down_proj`, F, C, mlpBias),
      );
    }
    mods.push(other('model.norm', [['weight', C]]));
    mods.push(tied ? { name: 'lm_head', linear: false, params: [] } : linear('lm_head', C, V, false));
    return mods;
  }
  throw new Error(`countLoraParameters: model_type ${JSON.stringify(type)} is not supported (llama, mistral, qwen2, gpt2)`);
}

export interface LoraParameterCount {
  /** adapter parameters plus modules_to_save copies and trainable biases */
  trainable: number;
  /** parameters of the base model */
  base: number;
  /** PEFT's "all params": base + adapter parameters + modules_to_save copies */
  all: number;
  /** the adapted module names */
  targets: string[];
}

/** Counts LoRA and base parameters for an HF config.json object, without allocating weights. */
export function countLoraParameters(hfConfig: Record<string, unknown>, loraConfig: LoraConfig | LoraConfigInput): LoraParameterCount {
  const { config } = parseLoraConfig(loraConfig as Record<string, unknown>);
  const mods = modulesFromConfig(hfConfig);
  const modelType = typeof hfConfig.model_type === 'string' ? hfConfig.model_type : undefined;
  const plan = planTargets(config, mods.map((m) => ({ name: m.name, linear: m.linear })), modelType);
  const base = mods.reduce((n, m) => n + m.params.reduce((k, p) => k + p.size, 0), 0);
  let adapter = 0;
  const targets = new Set(plan.targets);
  for (const m of mods) {
    if (!targets.has(m.name)) continue;
    const { r } = rankAndAlpha(config, m.name);
    adapter += r * (m.in! + m.out!);
    if (config.use_dora) adapter += m.out!;
    if (config.lora_bias) adapter += m.out!;
  }
  let saved = 0;
  const savedNames: string[] = [];
  for (const t of config.modules_to_save ?? []) {
    for (const m of mods) {
      if (!m.name.endsWith(t) || savedNames.some((s) => m.name.startsWith(`${s}.`))) continue;
      savedNames.push(m.name);
      saved += m.params.reduce((k, p) => k + p.size, 0);
    }
  }
  let bias = 0;
  if (config.bias !== 'none') {
    for (const m of mods) {
      if (savedNames.some((s) => m.name === s || m.name.startsWith(`${s}.`))) continue;
      if (config.bias === 'lora_only' && !targets.has(m.name)) continue;
      for (const p of m.params) if (p.name.endsWith('.bias')) bias += p.size;
    }
  }
  return { trainable: adapter + saved + bias, base, all: base + adapter + saved, targets: plan.targets };
}
