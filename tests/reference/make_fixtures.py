#!/usr/bin/env python3
"""Write lorakit's PyTorch parity fixtures under tests/fixtures/ (see tests/reference/README.md).

    /usr/bin/python3 tests/reference/make_fixtures.py [--out tests/fixtures] [--check]

Deterministic: fixed seeds, float32, one thread; re-running rewrites byte-identical files.
--check also runs the slow loop-based attention cross-check (always on by default; --fast skips it).
"""
import argparse
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import lora as L  # noqa: E402
import models as M  # noqa: E402
import st  # noqa: E402

TRANSFORMERS_VERSION = "4.46.3"
NEW_FAMILIES_TRANSFORMERS_VERSION = "4.56.1"  # qwen3 and smollm3 configs (added after 4.46)
VOCAB = 128
HIDDEN = 32
LAYERS = 2
MAX_NEW_TOKENS = 20
# prompts: row 0 has 8 tokens (left-padded by 4), row 1 has 12 tokens; T = 12
PROMPT_LENGTHS = (8, 12)
PROMPT_SEED = 1234


def dumps_hf(d):
    """transformers' PretrainedConfig.to_json_string: indent 2, sorted keys, trailing newline."""
    return json.dumps(d, indent=2, sort_keys=True) + "\n"


# --------------------------------------------------------------------------------------------
# model definitions
# --------------------------------------------------------------------------------------------
def llama_like_config(model_type, *, heads, kv_heads, head_dim, inter, eps, theta, tie, rope_scaling=None,
                      dtype="float32", qkv_bias=False):
    common = {
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "max_position_embeddings": 256,
        "model_type": model_type,
        "num_attention_heads": heads,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": kv_heads,
        "rms_norm_eps": eps,
        "rope_theta": theta,
        "tie_word_embeddings": tie,
        "torch_dtype": dtype,
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": VOCAB,
    }
    if model_type == "llama":
        common.update({
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": False,
            "head_dim": head_dim,
            "mlp_bias": False,
            "pretraining_tp": 1,
            "rope_scaling": rope_scaling,
        })
    elif model_type == "mistral":
        common.update({
            "architectures": ["MistralForCausalLM"],
            "head_dim": head_dim,
            "sliding_window": None,
        })
    elif model_type == "qwen2":
        assert head_dim == HIDDEN // heads  # Qwen2Config has no head_dim
        common.update({
            "architectures": ["Qwen2ForCausalLM"],
            "max_window_layers": 28,
            "rope_scaling": rope_scaling,
            "sliding_window": None,
            "use_sliding_window": False,
        })
    spec = {
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "num_hidden_layers": LAYERS,
        "rms_norm_eps": eps,
        "rope_theta": theta,
        "rope_scaling": rope_scaling,
        "tie_word_embeddings": tie,
        "qkv_bias": qkv_bias,
        "intermediate_size": inter,
    }
    return common, spec


def qwen3_smollm3_config(model_type, *, heads, kv_heads, head_dim, inter, eps, theta, tie, bias, windows,
                         layer_rope, extra):
    """Qwen3 / SmolLM3 configs with the attributes their transformers configs serialise, plus the
    reference spec (per-layer windows and RoPE, q/k norms)."""
    cfg = {
        "attention_bias": bias,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "max_position_embeddings": 256,
        "model_type": model_type,
        "num_attention_heads": heads,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": kv_heads,
        "rms_norm_eps": eps,
        "rope_scaling": None,
        "rope_theta": theta,
        "tie_word_embeddings": tie,
        "torch_dtype": "float32",
        "transformers_version": NEW_FAMILIES_TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": VOCAB,
    }
    cfg.update(extra)
    spec = {
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "num_hidden_layers": LAYERS,
        "rms_norm_eps": eps,
        "rope_theta": theta,
        "rope_scaling": None,
        "tie_word_embeddings": tie,
        "qkv_bias": bias,
        "o_bias": bias,
        "qk_norm": model_type == "qwen3",
        "intermediate_size": inter,
        "layer_windows": windows,
        "layer_rope": layer_rope,
    }
    return cfg, spec


def llama_param_shapes(spec):
    C, I = HIDDEN, spec["intermediate_size"]
    H, KV, hd = spec["num_attention_heads"], spec["num_key_value_heads"], spec["head_dim"]
    shapes = {"model.embed_tokens.weight": (VOCAB, C), "model.norm.weight": (C,)}
    if not spec["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (VOCAB, C)
    for i in range(LAYERS):
        pre = f"model.layers.{i}."
        shapes[pre + "input_layernorm.weight"] = (C,)
        shapes[pre + "post_attention_layernorm.weight"] = (C,)
        shapes[pre + "self_attn.q_proj.weight"] = (H * hd, C)
        shapes[pre + "self_attn.k_proj.weight"] = (KV * hd, C)
        shapes[pre + "self_attn.v_proj.weight"] = (KV * hd, C)
        shapes[pre + "self_attn.o_proj.weight"] = (C, H * hd)
        if spec["qkv_bias"]:
            shapes[pre + "self_attn.q_proj.bias"] = (H * hd,)
            shapes[pre + "self_attn.k_proj.bias"] = (KV * hd,)
            shapes[pre + "self_attn.v_proj.bias"] = (KV * hd,)
        if spec.get("o_bias"):
            shapes[pre + "self_attn.o_proj.bias"] = (C,)
        if spec.get("qk_norm"):
            shapes[pre + "self_attn.q_norm.weight"] = (hd,)
            shapes[pre + "self_attn.k_norm.weight"] = (hd,)
        shapes[pre + "mlp.gate_proj.weight"] = (I, C)
        shapes[pre + "mlp.up_proj.weight"] = (I, C)
        shapes[pre + "mlp.down_proj.weight"] = (C, I)
    return shapes


def gpt2_config():
    cfg = {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": VOCAB - 1,
        "embd_pdrop": 0.1,
        "eos_token_id": VOCAB - 1,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_embd": HIDDEN,
        "n_head": 4,
        "n_inner": None,
        "n_layer": LAYERS,
        "n_positions": 64,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "torch_dtype": "float32",
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": VOCAB,
    }
    spec = {"n_head": 4, "n_layer": LAYERS, "layer_norm_epsilon": 1e-05, "n_inner": 4 * HIDDEN}
    return cfg, spec


def gpt2_param_shapes(spec):
    C, I = HIDDEN, spec["n_inner"]
    shapes = {
        "transformer.wte.weight": (VOCAB, C),
        "transformer.wpe.weight": (64, C),
        "transformer.ln_f.weight": (C,),
        "transformer.ln_f.bias": (C,),
    }
    for i in range(LAYERS):
        pre = f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            shapes[pre + ln + ".weight"] = (C,)
            shapes[pre + ln + ".bias"] = (C,)
        # Conv1D weights are [in, out]
        shapes[pre + "attn.c_attn.weight"] = (C, 3 * C)
        shapes[pre + "attn.c_attn.bias"] = (3 * C,)
        shapes[pre + "attn.c_proj.weight"] = (C, C)
        shapes[pre + "attn.c_proj.bias"] = (C,)
        shapes[pre + "mlp.c_fc.weight"] = (C, I)
        shapes[pre + "mlp.c_fc.bias"] = (I,)
        shapes[pre + "mlp.c_proj.weight"] = (I, C)
        shapes[pre + "mlp.c_proj.bias"] = (C,)
    return shapes


def gemma3_config():
    """A tiny Gemma3ForCausalLM: head_dim 12 (not hidden / heads), a sliding layer (window 4, shorter
    than the batch's 12 tokens) then a full one, query_pre_attn_scalar 16 (not head_dim), linear rope
    scaling on the full layer only, final logit softcapping 5."""
    cfg = {
        "architectures": ["Gemma3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": None,
        "bos_token_id": 2,
        "cache_implementation": "hybrid",
        "eos_token_id": 1,
        "final_logit_softcapping": 5.0,
        "head_dim": 12,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "layer_types": ["sliding_attention", "full_attention"],
        "max_position_embeddings": 256,
        "model_type": "gemma3_text",
        "num_attention_heads": 4,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": 2,
        "pad_token_id": 0,
        "query_pre_attn_scalar": 16,
        "rms_norm_eps": 1e-06,
        "rope_local_base_freq": 10000.0,
        "rope_scaling": {"factor": 2.0, "rope_type": "linear"},
        "rope_theta": 1000000.0,
        "sliding_window": 4,
        "sliding_window_pattern": 2,
        "torch_dtype": "float32",
        "transformers_version": "4.53.0",
        "use_cache": True,
        "vocab_size": VOCAB,
    }
    import gemma3
    return cfg, gemma3.spec_from_config(cfg)


def gemma3_param_shapes(spec):
    C, I = HIDDEN, spec["intermediate_size"]
    H, KV, hd = spec["num_attention_heads"], spec["num_key_value_heads"], spec["head_dim"]
    shapes = {"model.embed_tokens.weight": (VOCAB, C), "model.norm.weight": (C,)}
    for i in range(LAYERS):
        pre = f"model.layers.{i}."
        for n in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"):
            shapes[pre + n + ".weight"] = (C,)
        shapes[pre + "self_attn.q_proj.weight"] = (H * hd, C)
        shapes[pre + "self_attn.k_proj.weight"] = (KV * hd, C)
        shapes[pre + "self_attn.v_proj.weight"] = (KV * hd, C)
        shapes[pre + "self_attn.o_proj.weight"] = (C, H * hd)
        shapes[pre + "self_attn.q_norm.weight"] = (hd,)
        shapes[pre + "self_attn.k_norm.weight"] = (hd,)
        shapes[pre + "mlp.gate_proj.weight"] = (I, C)
        shapes[pre + "mlp.up_proj.weight"] = (I, C)
        shapes[pre + "mlp.down_proj.weight"] = (C, I)
    return shapes


def phi3_config():
    """A tiny Phi3ForCausalLM: fused qkv_proj and gate_up_proj, partial_rotary_factor 0.75 (6 of 8
    channels rotated), longrope with original_max_position_embeddings 32 of 128 (attention factor
    sqrt(1 + ln 4 / ln 32)), a sliding window of 8 on every layer."""
    cfg = {
        "architectures": ["Phi3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "embd_pdrop": 0.0,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": 48,
        "max_position_embeddings": 128,
        "model_type": "phi3",
        "num_attention_heads": 4,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": 2,
        "original_max_position_embeddings": 32,
        "pad_token_id": 0,
        "partial_rotary_factor": 0.75,
        "resid_pdrop": 0.0,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"long_factor": [1.25, 3.5, 9.0], "short_factor": [1.0, 1.5, 2.25], "type": "longrope"},
        "rope_theta": 10000.0,
        "sliding_window": 8,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": True,
        "vocab_size": VOCAB,
    }
    import phi3
    return cfg, phi3.spec_from_config(cfg)


def phi3_param_shapes(spec):
    C, I = HIDDEN, spec["intermediate_size"]
    H, KV, hd = spec["num_attention_heads"], spec["num_key_value_heads"], spec["head_dim"]
    shapes = {"model.embed_tokens.weight": (VOCAB, C), "model.norm.weight": (C,), "lm_head.weight": (VOCAB, C)}
    for i in range(LAYERS):
        pre = f"model.layers.{i}."
        shapes[pre + "input_layernorm.weight"] = (C,)
        shapes[pre + "post_attention_layernorm.weight"] = (C,)
        shapes[pre + "self_attn.qkv_proj.weight"] = ((H + 2 * KV) * hd, C)
        shapes[pre + "self_attn.o_proj.weight"] = (C, H * hd)
        shapes[pre + "mlp.gate_up_proj.weight"] = (2 * I, C)
        shapes[pre + "mlp.down_proj.weight"] = (C, I)
    return shapes


def init_params(shapes, seed, gpt2=False, tied=False, unit_offset_norms=False):
    """Scales chosen so that logits are O(1..3) and greedy decoding has clear winners.
    unit_offset_norms: norm weights w scale by (1 + w) (Gemma), so they are drawn around 0."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k in sorted(shapes):
        shp = shapes[k]
        n = torch.randn(shp, generator=g, dtype=torch.float32)
        if k.endswith(("embed_tokens.weight", "wte.weight")):
            # a tied embedding is also the output head: keep it at the lm_head scale (Gemma's, scaled
            # by sqrt(hidden) on the way in, smaller so that the layers outweigh the input token)
            t = n * ((0.5 if unit_offset_norms else 2.0) / HIDDEN ** 0.5) if tied else n
        elif k.endswith("wpe.weight"):
            t = 0.2 * n
        elif k.endswith("lm_head.weight"):
            t = n * (2.0 / HIDDEN ** 0.5)
        elif len(shp) == 1 and ("norm" in k or ".ln_" in k):
            t = (1.0 + 0.1 * n) if k.endswith(".weight") and not unit_offset_norms else 0.1 * n
        elif len(shp) == 1:  # projection biases
            t = 0.2 * n
        else:
            fan_in = shp[0] if gpt2 else shp[1]
            t = n / fan_in ** 0.5
        out[k] = t.contiguous()
    return out


def define_models():
    defs = []
    cfg, spec = llama_like_config(
        "llama", heads=4, kv_heads=2, head_dim=8, inter=64, eps=1e-5, theta=10000.0, tie=False,
        rope_scaling={"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                      "original_max_position_embeddings": 128, "rope_type": "llama3"})
    defs.append(("llama-gqa-llama3rope", cfg, spec, 101, torch.float32))
    cfg, spec = llama_like_config("llama", heads=4, kv_heads=1, head_dim=12, inter=48, eps=1e-6,
                                  theta=10000.0, tie=True)
    defs.append(("llama-tied", cfg, spec, 102, torch.float32))
    cfg, spec = llama_like_config("qwen2", heads=4, kv_heads=2, head_dim=8, inter=64, eps=1e-6,
                                  theta=1000000.0, tie=False, qkv_bias=True)
    defs.append(("qwen2-bias", cfg, spec, 103, torch.float32))
    cfg, spec = llama_like_config("mistral", heads=4, kv_heads=2, head_dim=8, inter=64, eps=1e-5,
                                  theta=1000000.0, tie=False)
    defs.append(("mistral", cfg, spec, 104, torch.float32))
    cfg, spec = gpt2_config()
    defs.append(("gpt2", cfg, spec, 105, torch.float32))
    cfg, spec = llama_like_config("llama", heads=4, kv_heads=2, head_dim=8, inter=64, eps=1e-5,
                                  theta=500000.0, tie=False, dtype="bfloat16")
    defs.append(("llama-bf16", cfg, spec, 106, torch.bfloat16))
    # Qwen3: head_dim 12 (not hidden / heads = 8), q_norm/k_norm, attention_bias on q, k, v, o, tied
    # embeddings, layer 0 sliding with a window of 5 (shorter than the 12-token batch and the
    # 32-token generations), layer 1 full
    cfg, spec = qwen3_smollm3_config(
        "qwen3", heads=4, kv_heads=2, head_dim=12, inter=64, eps=1e-6, theta=1000000.0, tie=True, bias=True,
        windows=[5, 0], layer_rope=[True, True],
        extra={"architectures": ["Qwen3ForCausalLM"], "head_dim": 12, "layer_types": ["sliding_attention", "full_attention"],
               "max_window_layers": 28, "sliding_window": 5, "use_sliding_window": True})
    defs.append(("qwen3-sliding", cfg, spec, 107, torch.float32))
    # SmolLM3: no RoPE on layer 1 (no_rope_layers [1, 0]), GQA 4/1, tied embeddings
    cfg, spec = qwen3_smollm3_config(
        "smollm3", heads=4, kv_heads=1, head_dim=8, inter=48, eps=1e-6, theta=2000000.0, tie=True, bias=False,
        windows=[0, 0], layer_rope=[True, False],
        extra={"architectures": ["SmolLM3ForCausalLM"], "layer_types": ["full_attention", "full_attention"],
               "max_window_layers": 28, "mlp_bias": False, "no_rope_layer_interval": 4, "no_rope_layers": [1, 0],
               "pad_token_id": None, "pretraining_tp": 1, "sliding_window": None, "use_sliding_window": False})
    defs.append(("smollm3-nope", cfg, spec, 108, torch.float32))
    cfg, spec = gemma3_config()
    defs.append(("gemma3", cfg, spec, 107, torch.float32))
    cfg, spec = phi3_config()
    defs.append(("phi3-longrope", cfg, spec, 108, torch.float32))

    shape_fns = {"gpt2": gpt2_param_shapes, "gemma3_text": gemma3_param_shapes, "phi3": phi3_param_shapes}
    models = []
    for name, cfg, spec, seed, dtype in defs:
        gpt2 = cfg["model_type"] == "gpt2"
        shapes = shape_fns.get(cfg["model_type"], llama_param_shapes)(spec)
        tied = gpt2 or spec["tie_word_embeddings"]
        params = init_params(shapes, seed, gpt2=gpt2, tied=tied, unit_offset_norms=cfg["model_type"] == "gemma3_text")
        params = {k: v.to(dtype) for k, v in params.items()}
        models.append(M.Model(name, cfg, spec, params))
    return models


# --------------------------------------------------------------------------------------------
# the batch
# --------------------------------------------------------------------------------------------
def make_prompts():
    g = torch.Generator().manual_seed(PROMPT_SEED)
    prompts = []
    for n in PROMPT_LENGTHS:
        body = torch.randint(3, VOCAB - 1, (n - 1,), generator=g).tolist()
        prompts.append([1] + body)  # token 1 = llama bos; an ordinary token for gpt2
    return prompts


def make_batch(prompts, pad_id):
    T = max(len(p) for p in prompts)
    ids, mask, labels = [], [], []
    for p in prompts:
        npad = T - len(p)
        ids.append([pad_id] * npad + p)
        mask.append([0] * npad + [1] * len(p))
        # HF convention (unshifted): -100 on padding; also -100 on each row's first real token so that
        # no real token is predicted from a padded position (HF shifts labels by one inside the loss).
        labels.append([-100] * (npad + 1) + p[1:])
    ids = torch.tensor(ids, dtype=torch.long)
    mask = torch.tensor(mask, dtype=torch.long)
    labels = torch.tensor(labels, dtype=torch.long)
    return ids, mask, M.hf_position_ids(mask), labels


def pad_id_for(model):
    return model.config["eos_token_id"] if model.is_gpt2 else 0


# --------------------------------------------------------------------------------------------
# reference computations
# --------------------------------------------------------------------------------------------
def forward_loss(model, p, ids, mask, pos, labels, adapters=None, collect=None, naive=False):
    emb = model.embed(p, ids).detach().clone().requires_grad_(True)
    logits = model.forward(p, inputs_embeds=emb, position_ids=pos, key_mask=mask, adapters=adapters,
                           collect=collect, naive=naive)
    loss = M.causal_lm_loss(logits, labels)
    return emb, logits, loss


def zero_pad(t, mask):
    return (t * mask.to(t.dtype).view(mask.shape + (1,) * (t.dim() - 2))).detach().contiguous()


def family_tensors(model, p):
    """The rope frequencies of gemma3 (per layer kind) and phi3 (short and long), and for phi3 the
    logits of one 40-token sequence, past original_max_position_embeddings (32): the long factors."""
    out = {}
    if model.config["model_type"] == "gemma3_text":
        for kind in ("full_attention", "sliding_attention"):
            out["rope_inv_freq." + kind] = model.family.inv_freq(model.spec, kind).contiguous()
        return out
    omax = model.spec["original_max_position_embeddings"]
    out["rope_inv_freq.short"] = model.family.rope(model.spec, omax)[0].contiguous()
    out["rope_inv_freq.long"] = model.family.rope(model.spec, omax + 1)[0].contiguous()
    g = torch.Generator().manual_seed(PROMPT_SEED + 1)
    ids = torch.tensor([[1] + torch.randint(3, VOCAB - 1, (39,), generator=g).tolist()], dtype=torch.long)
    with torch.no_grad():
        out["long.logits"] = model.forward(p, input_ids=ids).contiguous()
    out["long.input_ids"] = ids
    return out


def generations(model, p, prompts, adapters=None):
    out = []
    for pr in prompts:
        a, margins = M.greedy(model, p, pr, MAX_NEW_TOKENS, use_cache=False, adapters=adapters)
        b, _ = M.greedy(model, p, pr, MAX_NEW_TOKENS, use_cache=True, adapters=adapters)
        assert a == b, f"{model.name}: KV-cache and full-recompute greedy decoding differ: {a} vs {b}"
        assert min(margins) > 1e-3, f"{model.name}: near-tie in greedy decoding (margin {min(margins)})"
        out.append({"prompt": pr, "max_new_tokens": MAX_NEW_TOKENS, "new_tokens": a,
                    "min_top2_margin": round(min(margins), 6)})
    return out


def check_close(name, a, b, tol):
    d = float((a - b).abs().max())
    assert d <= tol, f"{name}: max abs diff {d} > {tol}"
    return d


def model_reference(model, prompts, naive_check):
    p = model.compute_params()
    ids, mask, pos, labels = make_batch(prompts, pad_id_for(model))
    collect = {}
    emb, logits, loss = forward_loss(model, p, ids, mask, pos, labels, collect=collect)
    loss.backward()
    real = mask.bool()

    # check 1: each padded row's real positions equal the unpadded single-sequence forward
    for b, pr in enumerate(prompts):
        with torch.no_grad():
            single = model.forward(p, input_ids=torch.tensor([pr]))[0]
        check_close(f"{model.name} row {b} padded vs unpadded", logits[b][real[b]], single, 2e-5)
    # check 2: loop-based attention (pairwise rotation, explicit GQA head map, masked softmax)
    if naive_check and model.family is None:
        with torch.no_grad():
            naive = model.forward(p, input_ids=ids, position_ids=pos, key_mask=mask, naive=True)
        check_close(f"{model.name} naive attention", naive[real], logits[real], 2e-5)
    # check 3: loss by hand
    n_tok = int((labels[:, 1:] != -100).sum())
    lp = torch.log_softmax(logits[:, :-1].double(), -1)
    manual = -sum(lp[b, t, labels[b, t + 1]] for b in range(2) for t in range(ids.shape[1] - 1)
                  if labels[b, t + 1] != -100) / n_tok
    assert abs(float(manual) - float(loss)) < 1e-5, (float(manual), float(loss))
    # check 4: padded positions get no gradient
    assert float(emb.grad[~real].abs().max()) == 0.0

    tensors = {
        "input_ids": ids,
        "attention_mask": mask,
        "position_ids": pos,
        "labels": labels,
        "logits": zero_pad(logits, mask),
        "inputs_embeds": emb.detach().contiguous(),
        "inputs_embeds_grad": emb.grad.detach().contiguous(),
    }
    for k, v in collect.items():
        tensors["hidden." + k] = zero_pad(v, mask)
    if model.family is not None:
        tensors.update(family_tensors(model, p))
    elif not model.is_gpt2:
        inv = M.rope_inv_freq(model.spec)
        rs = model.spec["rope_scaling"]
        if rs is not None:  # llama3: the three regimes are all present at this size
            dflt = 1.0 / (model.spec["rope_theta"] ** (torch.arange(0, model.spec["head_dim"], 2).double()
                                                        / model.spec["head_dim"]))
            ratio = (inv.double() / dflt).tolist()
            kept = sum(abs(r - 1) < 1e-6 for r in ratio)
            divided = sum(abs(r - 1 / rs["factor"]) < 1e-6 for r in ratio)
            assert kept >= 1 and divided >= 1 and kept + divided < len(ratio), ratio
        tensors["rope_inv_freq"] = inv.contiguous()

    ref = {
        "model": model.name,
        "model_type": model.config["model_type"],
        "storage_dtype": model.config["torch_dtype"],
        "compute_dtype": "float32",
        "pad_token_id": pad_id_for(model),
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "position_ids": pos.tolist(),
        "labels": labels.tolist(),
        "num_loss_tokens": n_tok,
        "loss": float(loss),
        "logits_cover": "positions with attention_mask == 1; padded positions are stored as 0",
        "generation": generations(model, p, prompts),
    }
    return ref, tensors


# --------------------------------------------------------------------------------------------
# adapters
# --------------------------------------------------------------------------------------------
def define_adapters():
    base = "tests/fixtures/models/"
    return [
        {
            "name": "llama-qv",
            "base": "llama-gqa-llama3rope",
            "config": L.peft_lora_config(base + "llama-gqa-llama3rope", 4, 8, ["q_proj", "v_proj"]),
            "seed": 201,
        },
        {
            "name": "llama-all-rslora-patterns",
            "base": "llama-gqa-llama3rope",
            "config": L.peft_lora_config(
                base + "llama-gqa-llama3rope", 4, 8,
                ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                use_rslora=True,
                rank_pattern={"o_proj": 2, "layers.1.mlp.down_proj": 6},
                alpha_pattern={"gate_proj": 16}),
            "seed": 202,
        },
        {
            "name": "llama-dora",
            "base": "llama-gqa-llama3rope",
            "config": L.peft_lora_config(base + "llama-gqa-llama3rope", 4, 8, ["q_proj", "v_proj", "down_proj"],
                                         use_dora=True),
            "seed": 203,
        },
        {
            "name": "qwen3-all",
            "base": "qwen3-sliding",
            "config": L.peft_lora_config(base + "qwen3-sliding", 4, 8,
                                         ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
            "seed": 205,
        },
        {
            "name": "smollm3-qkvo",
            "base": "smollm3-nope",
            "config": L.peft_lora_config(base + "smollm3-nope", 4, 16, ["q_proj", "k_proj", "v_proj", "o_proj"]),
            "seed": 206,
        },
        {
            "name": "gpt2-c_attn",
            "base": "gpt2",
            "config": L.peft_lora_config(base + "gpt2", 4, 8, ["c_attn"], fan_in_fan_out=True),
            "seed": 204,
        },
        {
            "name": "gemma3-attn-mlp",
            "base": "gemma3",
            "config": L.peft_lora_config(base + "gemma3", 4, 8, ["q_proj", "v_proj", "o_proj", "gate_proj", "down_proj"]),
            "seed": 205,
        },
        {
            "name": "phi3-fused",
            "base": "phi3-longrope",
            "config": L.peft_lora_config(base + "phi3-longrope", 4, 8, ["qkv_proj", "o_proj", "gate_up_proj"]),
            "seed": 210,
        },
    ]


def init_adapters(model, cfg, seed):
    """Random non-zero A and B (and a perturbed DoRA magnitude), drawn in sorted module order."""
    g = torch.Generator().manual_seed(seed)
    p = model.compute_params()
    adapters = {}
    for path, conv1d in sorted(model.linear_modules()):
        if not L.is_target(cfg, path):
            continue
        r, _alpha, scaling = L.module_rank_alpha(cfg, path)
        W = p[path + ".weight"]
        fan_in, fan_out = (W.shape[0], W.shape[1]) if conv1d else (W.shape[1], W.shape[0])
        bound = 1.0 / fan_in ** 0.5  # kaiming_uniform(a=sqrt(5)) bound for lora_A
        A = (torch.rand((r, fan_in), generator=g) * 2 - 1) * bound
        B = torch.randn((fan_out, r), generator=g) * (0.3 / scaling)
        mag = None
        if cfg["use_dora"]:
            W_oi = W.t() if conv1d else W
            norm = torch.linalg.norm(W_oi + scaling * (B @ A), dim=1)
            mag = norm * (1.0 + 0.2 * torch.randn((fan_out,), generator=g))
        adapters[path] = L.LoraModule(A.contiguous(), B.contiguous(), scaling, conv1d,
                                      None if mag is None else mag.contiguous())
    return adapters


def check_design_grads(adapters, model, p, ids, mask, pos, labels):
    """The closed forms in src/lora/lora-linear.ts's header: dB = s*dy^T (x A^T), dA = s*(dy B)^T x, from captured x and dy."""
    caught = {}

    class Spy:
        def __init__(self, path, inner):
            self.path, self.inner = path, inner

        def __call__(self, x, result, W, b):
            y = self.inner(x, result, W, b)
            y.retain_grad()
            caught[self.path] = (x, y)
            return y

    plain = {k: v for k, v in adapters.items() if v.magnitude is None}
    if not plain:
        return
    for ad in adapters.values():
        ad.A.requires_grad_(True)
        ad.B.requires_grad_(True)
        ad.A.grad = ad.B.grad = None
    spied = {k: Spy(k, v) if k in plain else v for k, v in adapters.items()}
    _, _, loss = forward_loss(model, p, ids, mask, pos, labels, adapters=spied)
    loss.backward()
    for k, ad in plain.items():
        x, y = caught[k]
        x2 = x.detach().reshape(-1, x.shape[-1])
        dy = y.grad.reshape(-1, y.shape[-1])
        dB = ad.scaling * dy.t() @ (x2 @ ad.A.detach().t())
        dA = ad.scaling * (dy @ ad.B.detach()).t() @ x2
        check_close(f"design dB {k}", dB, ad.B.grad, 1e-5)
        check_close(f"design dA {k}", dA, ad.A.grad, 1e-5)
    for ad in adapters.values():
        ad.A.grad = ad.B.grad = None


def adapter_reference(spec, model, prompts):
    cfg = spec["config"]
    p = model.compute_params()
    adapters = init_adapters(model, cfg, spec["seed"])
    ids, mask, pos, labels = make_batch(prompts, pad_id_for(model))

    check_design_grads(adapters, model, p, ids, mask, pos, labels)

    trainable = {}
    for path, ad in adapters.items():
        for t in (ad.A, ad.B) + ((ad.magnitude,) if ad.magnitude is not None else ()):
            t.requires_grad_(True)
            t.grad = None
        trainable[L.PEFT_PREFIX + path + ".lora_A.weight"] = ad.A
        trainable[L.PEFT_PREFIX + path + ".lora_B.weight"] = ad.B
        if ad.magnitude is not None:
            trainable[L.PEFT_PREFIX + path + ".lora_magnitude_vector"] = ad.magnitude
    emb, logits, loss = forward_loss(model, p, ids, mask, pos, labels, adapters=adapters)
    loss.backward()
    with torch.no_grad():
        _, base_logits, base_loss = forward_loss(model, p, ids, mask, pos, labels)
    real = mask.bool()
    delta = float((logits - base_logits)[real].abs().max())
    assert delta > 0.05, f"{spec['name']}: adapter barely changes the logits ({delta})"

    # merged weights reproduce the adapter's logits
    merged = {}
    pm = dict(p)
    with torch.no_grad():
        for path, ad in adapters.items():
            merged[path + ".weight"] = ad.merged_weight(p[path + ".weight"]).contiguous()
            pm[path + ".weight"] = merged[path + ".weight"]
        ml = model.forward(pm, input_ids=ids, position_ids=pos, key_mask=mask)
    check_close(f"{spec['name']} merged vs adapter logits", ml[real], logits[real], 2e-5)

    tensors = {
        "logits": zero_pad(logits, mask),
    }
    for k, t in trainable.items():
        assert t.grad is not None and float(t.grad.abs().max()) > 0, k
        tensors["grad." + k] = t.grad.detach().contiguous()
    for k, w in merged.items():
        tensors["merged." + k] = w

    with torch.no_grad():
        plain = {k: L.LoraModule(a.A.detach(), a.B.detach(), a.scaling, a.conv1d,
                                 None if a.magnitude is None else a.magnitude.detach())
                 for k, a in adapters.items()}
    modules = {}
    for path in sorted(adapters):
        r, alpha, scaling = L.module_rank_alpha(cfg, path)
        modules[path] = {"r": r, "lora_alpha": alpha, "scaling": scaling, "conv1d": adapters[path].conv1d}
    ref = {
        "adapter": spec["name"],
        "base_model": spec["base"],
        "base_model_path": "tests/fixtures/models/" + spec["base"],
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "position_ids": pos.tolist(),
        "labels": labels.tolist(),
        "num_loss_tokens": int((labels[:, 1:] != -100).sum()),
        "loss": float(loss),
        "base_loss": float(base_loss),
        "logits_cover": "positions with attention_mask == 1; padded positions are stored as 0",
        "modules": modules,
        "generation": generations(model, p, prompts, adapters=plain),
    }
    state = {k: v.detach().contiguous() for k, v in L.peft_state_dict(plain).items()}
    return ref, tensors, state


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def write_text(path, text):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def write_model(model, root, ref, tensors):
    d = os.path.join(root, "models", model.name)
    os.makedirs(d, exist_ok=True)
    write_text(os.path.join(d, "config.json"), dumps_hf(model.config))
    write_text(os.path.join(d, "generation_config.json"), dumps_hf({
        "_from_model_config": True,
        "bos_token_id": model.config["bos_token_id"],
        "eos_token_id": model.config["eos_token_id"],
        "transformers_version": TRANSFORMERS_VERSION,
    }))
    st.save_file(model.params, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    write_text(os.path.join(d, "reference.json"), json.dumps(ref, indent=2, sort_keys=True) + "\n")
    st.save_file(tensors, os.path.join(d, "reference.safetensors"))


def write_adapter(spec, root, ref, tensors, state):
    d = os.path.join(root, "adapters", spec["name"])
    os.makedirs(d, exist_ok=True)
    write_text(os.path.join(d, "adapter_config.json"), L.dump_peft_config(spec["config"]))
    st.save_file(state, os.path.join(d, "adapter_model.safetensors"), metadata={"format": "pt"})
    write_text(os.path.join(d, "reference.json"), json.dumps(ref, indent=2, sort_keys=True) + "\n")
    st.save_file(tensors, os.path.join(d, "reference.safetensors"))


def setup_torch():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.normpath(os.path.join(here, "..", "fixtures")))
    ap.add_argument("--fast", action="store_true", help="skip the slow loop-based attention check")
    args = ap.parse_args()
    setup_torch()

    prompts = make_prompts()
    models = {m.name: m for m in define_models()}
    for m in models.values():
        ref, tensors = model_reference(m, prompts, naive_check=not args.fast)
        # the safetensors round trip reproduces the stored parameters bit for bit
        write_model(m, args.out, ref, tensors)
        back = st.load_file(os.path.join(args.out, "models", m.name, "model.safetensors"))
        assert back.keys() == m.params.keys() and all(torch.equal(back[k], m.params[k]) for k in back)
        # config.json + model.safetensors alone reproduce the reference logits exactly
        re_m = M.load_model_folder(os.path.join(args.out, "models", m.name))
        ids, mask, pos = tensors["input_ids"], tensors["attention_mask"], tensors["position_ids"]
        with torch.no_grad():
            lg = re_m.forward(re_m.compute_params(), input_ids=ids, position_ids=pos, key_mask=mask)
        assert torch.equal(zero_pad(lg, mask), tensors["logits"]), m.name
        print(f"model   {m.name:26s} loss {ref['loss']:.6f}  gen0 {ref['generation'][0]['new_tokens'][:6]}...")
    for spec in define_adapters():
        model = models[spec["base"]]
        ref, tensors, state = adapter_reference(spec, model, prompts)
        write_adapter(spec, args.out, ref, tensors, state)
        print(f"adapter {spec['name']:26s} loss {ref['loss']:.6f} (base {ref['base_loss']:.6f})")
    manifest = {
        "generator": "tests/reference/make_fixtures.py",
        "layout": "tests/reference/README.md",
        "models": sorted(models),
        "adapters": [{"name": s["name"], "base": s["base"]} for s in define_adapters()],
    }
    write_text(os.path.join(args.out, "manifest.json"), json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print("ok")


if __name__ == "__main__":
    main()
