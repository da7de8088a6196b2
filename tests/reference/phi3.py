"""Plain-PyTorch Phi-3 / Phi-4-mini (Phi3ForCausalLM, model_type "phi3").

Written from transformers' modeling_phi3.py / configuration_phi3.py / modeling_rope_utils.py
(eager attention), in float32:
- LLaMA's pre-norm block (RMSNorm as LlamaRMSNorm) with fused projections:
  qkv_proj [(H + 2*KV)*hd, C] split q | k | v along the output, gate_up_proj [2*I, C] split
  gate | up (`chunk(2)`), MLP = down(up * silu(gate));
- partial rotary: RoPE on the first int(head_dim * partial_rotary_factor) channels of each head
  (rotate_half within them), the rest passed through;
- longrope: inv_freq = 1 / (ext * theta ** (arange(0, dim, 2) / dim)) with ext = long_factor when
  the sequence (max position + 1) is longer than original_max_position_embeddings, else
  short_factor; cos and sin times attention_factor = sqrt(1 + ln(f) / ln(original_max)),
  f = max_position_embeddings / original_max_position_embeddings (unless rope_scaling sets
  attention_factor);
- sliding_window (when set) on every layer: a key is seen while kv_idx > q_idx - sliding_window.
"""
import math

import torch
import torch.nn.functional as F

from models import build_attn_mask, cached_attention, lm_head, positions, proj, rms_norm, rotate_half


def rope(spec, seq_len):
    """(inv_freq, attention_factor) for a forward over positions < seq_len."""
    dim = spec["rotary_dim"]
    base = float(spec["rope_theta"])
    shape = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim
    rs = spec.get("rope_scaling")
    if rs is None:
        return 1.0 / (base ** shape), 1.0
    assert rs.get("rope_type", rs.get("type")) == "longrope", rs
    omax = spec["original_max_position_embeddings"]
    factor = spec["max_position_embeddings"] / omax
    att = rs.get("attention_factor")
    if att is None:
        att = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(omax))
    ext = torch.tensor(rs["long_factor"] if seq_len > omax else rs["short_factor"], dtype=torch.float32)
    return 1.0 / (ext * base ** shape), att


def cos_sin(spec, position_ids):
    inv, att = rope(spec, int(position_ids.max()) + 1)
    inv = inv[None, :, None].float().expand(position_ids.shape[0], -1, 1)
    pos = position_ids[:, None, :].float()
    freqs = (inv @ pos).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * att, emb.sin() * att


def attention(spec, p, pre, x, cos, sin, add_mask, adapters, cache, layer):
    B, T, _ = x.shape
    H, KV, hd = spec["num_attention_heads"], spec["num_key_value_heads"], spec["head_dim"]
    qkv = proj(p, pre + "qkv_proj", x, adapters)
    q = qkv[..., : H * hd].reshape(B, T, H, hd).transpose(1, 2)
    k = qkv[..., H * hd: (H + KV) * hd].reshape(B, T, KV, hd).transpose(1, 2)
    v = qkv[..., (H + KV) * hd:].reshape(B, T, KV, hd).transpose(1, 2)
    rd = spec["rotary_dim"]
    c, s = cos.unsqueeze(1), sin.unsqueeze(1)
    q = torch.cat([q[..., :rd] * c + rotate_half(q[..., :rd]) * s, q[..., rd:]], dim=-1)
    k = torch.cat([k[..., :rd] * c + rotate_half(k[..., :rd]) * s, k[..., rd:]], dim=-1)
    out = cached_attention(q, k, v, cache, layer, hd ** -0.5, add_mask)
    return proj(p, pre + "o_proj", out, adapters)


def forward(spec, p, input_ids=None, inputs_embeds=None, position_ids=None, key_mask=None,
            adapters=None, cache=None, collect=None, naive=False):
    assert not naive
    h = inputs_embeds if inputs_embeds is not None else p["model.embed_tokens.weight"][input_ids].float()
    B, T, _ = h.shape
    past, key_mask, position_ids = positions(h, cache, key_mask, position_ids)
    cos, sin = cos_sin(spec, position_ids)
    add_mask = build_attn_mask(key_mask, T, past, spec.get("sliding_window") or 0)
    eps = spec["rms_norm_eps"]
    I = spec["intermediate_size"]
    if collect is not None:
        collect["embeddings"] = h
    for i in range(spec["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        x = rms_norm(h, p[pre + "input_layernorm.weight"], eps)
        h = h + attention(spec, p, pre + "self_attn.", x, cos, sin, add_mask, adapters, cache, i)
        x = rms_norm(h, p[pre + "post_attention_layernorm.weight"], eps)
        gu = proj(p, pre + "mlp.gate_up_proj", x, adapters)
        gate, up = gu[..., :I], gu[..., I:]
        h = h + proj(p, pre + "mlp.down_proj", up * F.silu(gate), adapters)
        if collect is not None:
            collect[f"layer_out.{i}"] = h
    h = rms_norm(h, p["model.norm.weight"], eps)
    return lm_head(spec, p, h, adapters, collect)


def spec_from_config(cfg):
    H = cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // H
    rs = cfg.get("rope_scaling")
    return {
        "num_attention_heads": H,
        "num_key_value_heads": cfg.get("num_key_value_heads") or H,
        "head_dim": hd,
        "rotary_dim": int(hd * cfg.get("partial_rotary_factor", 1.0)),
        "num_hidden_layers": cfg["num_hidden_layers"],
        "rms_norm_eps": cfg.get("rms_norm_eps", 1e-5),
        "rope_theta": cfg.get("rope_theta", 10000.0),
        "rope_scaling": rs,
        "max_position_embeddings": cfg.get("max_position_embeddings", 4096),
        "original_max_position_embeddings": cfg.get("original_max_position_embeddings") or cfg.get("max_position_embeddings", 4096),
        "sliding_window": cfg.get("sliding_window"),
        "tie_word_embeddings": cfg.get("tie_word_embeddings", False),
        "intermediate_size": cfg["intermediate_size"],
    }


LINEAR = ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")
