"""Plain-PyTorch Gemma 3 text model (Gemma3ForCausalLM, model_type "gemma3_text").

Written from transformers' modeling_gemma3.py / configuration_gemma3.py (eager attention), in
float32 except where Gemma rounds to the weights' dtype:
- embeddings: embed_tokens(ids) * sqrt(hidden_size), the scale cast to the embedding dtype first
  (Gemma3TextScaledWordEmbedding), the product in that dtype;
- RMSNorm: x * rsqrt(mean(x^2) + eps) * (1 + w), computed in float32 (Gemma3RMSNorm);
- every block: input_layernorm -> attention -> post_attention_layernorm -> residual add,
  pre_feedforward_layernorm -> MLP -> post_feedforward_layernorm -> residual add;
- attention: q_norm / k_norm (per head, over head_dim) before RoPE, scores scaled by
  query_pre_attn_scalar ** -0.5, optional tanh softcapping of the scores (attn_logit_softcapping),
  sliding layers see keys fewer than sliding_window slots back (kv_idx > q_idx - sliding_window),
  full layers everything causal;
- RoPE: full-attention layers use rope_theta with rope_scaling, sliding layers
  rope_local_base_freq with the default rope;
- MLP: down(gelu_tanh(gate(x)) * up(x)) (hidden_activation gelu_pytorch_tanh);
- logits: tied head (or lm_head), then final_logit_softcapping: tanh(logits / c) * c.
"""
import torch
import torch.nn.functional as F

from models import build_attn_mask, cached_attention, lm_head, positions, proj, rope_cos_sin, rotate_half


def gemma_rms(x, w, eps):
    xf = x.float()
    out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (out * (1.0 + w.float())).type_as(x)


def layer_types(cfg):
    """config.json layer_types, or from sliding_window_pattern: layer i slides unless (i + 1) % pattern == 0."""
    if cfg.get("layer_types") is not None:
        return list(cfg["layer_types"])
    pat = cfg.get("sliding_window_pattern", 6)
    return ["sliding_attention" if (i + 1) % pat else "full_attention" for i in range(cfg["num_hidden_layers"])]


def inv_freq(spec, kind):
    """'full_attention': rope_theta with rope_scaling (default or linear); 'sliding_attention': rope_local_base_freq."""
    dim = spec["head_dim"]
    shape = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim
    if kind == "sliding_attention":
        return 1.0 / (float(spec["rope_local_base_freq"]) ** shape)
    inv = 1.0 / (float(spec["rope_theta"]) ** shape)
    rs = spec.get("rope_scaling")
    if rs is None:
        return inv
    t = rs.get("rope_type", rs.get("type"))
    if t == "default":
        return inv
    assert t == "linear", rs
    return inv / rs["factor"]


def embed(spec, p, input_ids, dtype):
    E = p["model.embed_tokens.weight"]
    scale = torch.tensor(spec["hidden_size"] ** 0.5).to(dtype)
    return (E[input_ids].to(dtype) * scale).float()


def attention(spec, p, pre, x, cos, sin, add_mask, adapters, cache, layer):
    B, T, _ = x.shape
    H, KV, hd = spec["num_attention_heads"], spec["num_key_value_heads"], spec["head_dim"]
    eps = spec["rms_norm_eps"]
    q = proj(p, pre + "q_proj", x, adapters).view(B, T, H, hd).transpose(1, 2)
    k = proj(p, pre + "k_proj", x, adapters).view(B, T, KV, hd).transpose(1, 2)
    v = proj(p, pre + "v_proj", x, adapters).view(B, T, KV, hd).transpose(1, 2)
    q = gemma_rms(q, p[pre + "q_norm.weight"], eps)
    k = gemma_rms(k, p[pre + "k_norm.weight"], eps)
    c, s = cos.unsqueeze(1), sin.unsqueeze(1)
    q = q * c + rotate_half(q) * s
    k = k * c + rotate_half(k) * s
    out = cached_attention(q, k, v, cache, layer, spec["query_pre_attn_scalar"] ** -0.5, add_mask,
                           spec.get("attn_logit_softcapping"))
    return proj(p, pre + "o_proj", out, adapters)


def forward(spec, p, input_ids=None, inputs_embeds=None, position_ids=None, key_mask=None,
            adapters=None, cache=None, collect=None, naive=False, dtype=torch.float32):
    assert not naive
    h = inputs_embeds if inputs_embeds is not None else embed(spec, p, input_ids, dtype)
    B, T, _ = h.shape
    past, key_mask, position_ids = positions(h, cache, key_mask, position_ids)
    types = spec["layer_types"]
    rope = {t: rope_cos_sin(inv_freq(spec, t), position_ids) for t in set(types)}
    masks = {t: build_attn_mask(key_mask, T, past, spec["sliding_window"] if t == "sliding_attention" else 0) for t in set(types)}
    eps = spec["rms_norm_eps"]
    if collect is not None:
        collect["embeddings"] = h
    for i in range(spec["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        t = types[i]
        x = gemma_rms(h, p[pre + "input_layernorm.weight"], eps)
        a = attention(spec, p, pre + "self_attn.", x, rope[t][0], rope[t][1], masks[t], adapters, cache, i)
        h = h + gemma_rms(a, p[pre + "post_attention_layernorm.weight"], eps)
        x = gemma_rms(h, p[pre + "pre_feedforward_layernorm.weight"], eps)
        m = F.gelu(proj(p, pre + "mlp.gate_proj", x, adapters), approximate="tanh") * proj(p, pre + "mlp.up_proj", x, adapters)
        m = proj(p, pre + "mlp.down_proj", m, adapters)
        h = h + gemma_rms(m, p[pre + "post_feedforward_layernorm.weight"], eps)
        if collect is not None:
            collect[f"layer_out.{i}"] = h
    h = gemma_rms(h, p["model.norm.weight"], eps)
    logits = lm_head(spec, p, h, adapters, collect)
    cap = spec.get("final_logit_softcapping")
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    return logits


def spec_from_config(cfg):
    H = cfg["num_attention_heads"]
    return {
        "hidden_size": cfg["hidden_size"],
        "num_attention_heads": H,
        "num_key_value_heads": cfg.get("num_key_value_heads") or H,
        "head_dim": cfg.get("head_dim", 256),
        "num_hidden_layers": cfg["num_hidden_layers"],
        "rms_norm_eps": cfg.get("rms_norm_eps", 1e-6),
        "rope_theta": cfg.get("rope_theta", 1000000.0),
        "rope_local_base_freq": cfg.get("rope_local_base_freq", 10000.0),
        "rope_scaling": cfg.get("rope_scaling"),
        "query_pre_attn_scalar": cfg.get("query_pre_attn_scalar", 256),
        "sliding_window": cfg.get("sliding_window", 4096),
        "layer_types": layer_types(cfg),
        "attn_logit_softcapping": cfg.get("attn_logit_softcapping"),
        "final_logit_softcapping": cfg.get("final_logit_softcapping"),
        "tie_word_embeddings": cfg.get("tie_word_embeddings", True),
        "intermediate_size": cfg["intermediate_size"],
    }


LINEAR = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
