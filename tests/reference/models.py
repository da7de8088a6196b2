"""Plain-PyTorch re-implementations of the Hugging Face causal LMs the fixtures use.

Written from the architecture definitions of transformers' modeling_llama.py / modeling_qwen2.py /
modeling_mistral.py / modeling_qwen3.py / modeling_smollm3.py / modeling_gpt2.py (eager attention
path), in float32. Qwen3: an RMSNorm over each head of q and k (q_norm, k_norm) before RoPE; SmolLM3:
no RoPE on the layers no_rope_layers marks 0; both: sliding-window layers (a key is hidden when it
is `sliding_window` or more cache slots before the query, as masking_utils' sliding_window_overlay). Parameters live in a flat
dict keyed by the exact checkpoint key (e.g. "model.layers.0.self_attn.q_proj.weight"), so what is
computed here is what a `model.safetensors` with those keys means.

`adapters` maps a module path (e.g. "model.layers.0.self_attn.q_proj") to a LoraModule (lora.py);
every projection goes through `proj`, which adds the adapter's contribution exactly as PEFT does.
"""
import math

import torch
import torch.nn.functional as F

NEG = torch.finfo(torch.float32).min


# --------------------------------------------------------------------------------------------
# shared pieces
# --------------------------------------------------------------------------------------------
def proj(p, path, x, adapters=None, conv1d=False):
    """nn.Linear (weight [out, in]) or GPT-2 Conv1D (weight [in, out]) plus an optional adapter."""
    W = p[path + ".weight"]
    b = p.get(path + ".bias")
    if conv1d:
        # transformers.pytorch_utils.Conv1D: addmm(bias, x.view(-1, in), weight)
        shp = x.shape[:-1] + (W.shape[1],)
        if b is None:
            y = (x.reshape(-1, x.shape[-1]) @ W).view(shp)
        else:
            y = torch.addmm(b, x.reshape(-1, x.shape[-1]), W).view(shp)
    else:
        y = F.linear(x, W, b)
    if adapters is not None and path in adapters:
        y = adapters[path](x, y, W, b)
    return y


def build_attn_mask(key_mask, q_len, past_len, window=0):
    """Additive mask [B, 1, q_len, past_len + q_len]: 0 where query t (absolute index past+t)
    may attend key s (s <= past+t and key_mask[b, s] == 1, and with a sliding window
    s > past+t - window), float32 min elsewhere.
    Padded query rows (fully masked) become uniform: finite garbage that no real position reads."""
    B, S = key_mask.shape
    assert S == past_len + q_len
    q_idx = torch.arange(past_len, past_len + q_len).view(1, q_len, 1)
    k_idx = torch.arange(S).view(1, 1, S)
    allowed = (k_idx <= q_idx) & key_mask.bool().view(B, 1, S)
    if window:
        allowed = allowed & (k_idx > q_idx - window)
    m = torch.zeros(B, 1, q_len, S, dtype=torch.float32)
    m.masked_fill_(~allowed.view(B, 1, q_len, S), NEG)
    return m


def hf_position_ids(attention_mask):
    """What HF generate() computes for (left-)padded batches: cumsum(mask) - 1, padding set to 1."""
    pos = attention_mask.long().cumsum(-1) - 1
    pos.masked_fill_(attention_mask == 0, 1)
    return pos


def causal_lm_loss(logits, labels):
    """HF's ForCausalLMLoss: shift by one, cross-entropy in float32, ignore_index -100, mean."""
    V = logits.shape[-1]
    shift_logits = logits[:, :-1, :].reshape(-1, V).float()
    shift_labels = labels[:, 1:].reshape(-1)
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="mean")


# --------------------------------------------------------------------------------------------
# Llama family (llama, mistral, qwen2)
# --------------------------------------------------------------------------------------------
def rope_inv_freq(spec):
    """modeling_rope_utils: default and llama3 inverse frequencies (float32 math)."""
    dim = spec["head_dim"]
    base = float(spec["rope_theta"])
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    rs = spec.get("rope_scaling")
    if rs is None or rs.get("rope_type", rs.get("type")) == "default":
        return inv_freq
    assert rs["rope_type"] == "llama3", rs
    factor = rs["factor"]
    low_freq_factor = rs["low_freq_factor"]
    high_freq_factor = rs["high_freq_factor"]
    old_context_len = rs["original_max_position_embeddings"]
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    # wavelen < high_freq_wavelen: keep; wavelen > low_freq_wavelen: divide by factor; between: blend
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * inv_freq_llama / factor + smooth * inv_freq_llama
    is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, inv_freq_llama)


def rope_cos_sin(inv_freq, position_ids):
    # LlamaRotaryEmbedding.forward: freqs = inv_freq (x) positions, emb = cat(freqs, freqs)
    inv = inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
    pos = position_ids[:, None, :].float()
    freqs = (inv @ pos).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()  # attention_scaling is 1.0 for default and llama3


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rms_norm(x, w, eps):
    xf = x.float()
    var = xf.pow(2).mean(-1, keepdim=True)
    xf = xf * torch.rsqrt(var + eps)
    return w * xf.to(x.dtype)


def llama_attention(spec, p, pre, x, cos, sin, add_mask, adapters, cache, layer, naive=False, key_mask=None):
    B, T, _ = x.shape
    H, KV, hd = spec["num_attention_heads"], spec["num_key_value_heads"], spec["head_dim"]
    q = proj(p, pre + "q_proj", x, adapters).view(B, T, H, hd)
    k = proj(p, pre + "k_proj", x, adapters).view(B, T, KV, hd)
    if spec.get("qk_norm"):  # Qwen3: RMSNorm over each head (weight [hd]) before RoPE
        q = rms_norm(q, p[pre + "q_norm.weight"], spec["rms_norm_eps"])
        k = rms_norm(k, p[pre + "k_norm.weight"], spec["rms_norm_eps"])
    q = q.transpose(1, 2)
    k = k.transpose(1, 2)
    v = proj(p, pre + "v_proj", x, adapters).view(B, T, KV, hd).transpose(1, 2)
    use_rope = layer_rope(spec, layer)
    if naive:
        out = naive_llama_attention(spec, q, k, v, cos, sin, key_mask, use_rope, layer_window(spec, layer))
    else:
        if use_rope:
            c, s = cos.unsqueeze(1), sin.unsqueeze(1)
            q = q * c + rotate_half(q) * s
            k = k * c + rotate_half(k) * s
        out = cached_attention(q, k, v, cache, layer, hd ** -0.5, add_mask)
    return proj(p, pre + "o_proj", out, adapters)


def cached_attention(q, k, v, cache, layer, scale, add_mask, softcap=None):
    """The batched attention every decoder family shares, after q and k are rotated:
    q [B, H, T, hd], k and v [B, KV, T, hd]. Appends k and v to layer's entry of cache (a list,
    or None), repeats each kv head for its H/KV query heads, and returns
    softmax(softcap(q·kᵀ·scale) + add_mask)·v as [B, T, H·hd]."""
    B, H, T, hd = q.shape
    KV = k.shape[1]
    if cache is not None:
        if len(cache) > layer:
            pk, pv = cache[layer]
            k = torch.cat([pk, k], dim=2)
            v = torch.cat([pv, v], dim=2)
            cache[layer] = (k, v)
        else:
            cache.append((k, v))
    n_rep = H // KV
    kk = k[:, :, None].expand(B, KV, n_rep, k.shape[2], hd).reshape(B, H, k.shape[2], hd)
    vv = v[:, :, None].expand(B, KV, n_rep, v.shape[2], hd).reshape(B, H, v.shape[2], hd)
    w = torch.matmul(q, kk.transpose(2, 3)) * scale
    if softcap is not None:
        w = torch.tanh(w / softcap) * softcap
    w = w + add_mask
    w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(w, vv).transpose(1, 2).reshape(B, T, H * hd)


def layer_rope(spec, i):
    """whether layer i rotates q and k (SmolLM3's NoPE layers do not)"""
    lr = spec.get("layer_rope")
    return True if lr is None else bool(lr[i])


def layer_window(spec, i):
    """layer i's sliding window (0: full attention)"""
    lw = spec.get("layer_windows")
    return 0 if lw is None else lw[i]


def naive_llama_attention(spec, q, k, v, cos, sin, key_mask, use_rope=True, window=0):
    """Loop-based check: rotation written pairwise, kv head = h // (H/KV), softmax over the allowed
    keys only (within the sliding window, if any). Padded query rows give zeros. No cache."""
    B, H, T, hd = q.shape
    KV = spec["num_key_value_heads"]
    half = hd // 2

    def rot(x, b, t):  # x [hd]
        if not use_rope:
            return x
        c, s = cos[b, t, :half], sin[b, t, :half]
        x1, x2 = x[:half], x[half:]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s])

    out = torch.zeros(B, T, H, hd)
    for b in range(B):
        for h in range(H):
            g = h // (H // KV)
            keys = [rot(k[b, g, s], b, s) for s in range(T)]
            for t in range(T):
                if not key_mask[b, t]:
                    continue
                qt = rot(q[b, h, t], b, t)
                idx = [s for s in range(t + 1) if key_mask[b, s] and (not window or t - s < window)]
                sc = torch.stack([(qt * keys[s]).sum() / math.sqrt(hd) for s in idx])
                pr = torch.exp(sc - sc.max())
                pr = pr / pr.sum()
                out[b, t, h] = sum(pr[i] * v[b, g, s] for i, s in enumerate(idx))
    return out.reshape(B, T, H * hd)


def positions(h, cache, key_mask, position_ids):
    """The defaults every decoder forward shares, for inputs h [B, T, C] after a cache of past
    tokens: (past, key_mask [B, past+T] (all ones if None), position_ids [B, T] (past.. if None))."""
    B, T = h.shape[0], h.shape[1]
    past = cache[0][0].shape[2] if cache else 0
    if key_mask is None:
        key_mask = torch.ones(B, past + T, dtype=torch.long)
    if position_ids is None:
        position_ids = torch.arange(past, past + T).view(1, T).expand(B, T)
    return past, key_mask, position_ids


def lm_head(spec, p, h, adapters, collect):
    """Logits from the final normed hidden states h (recorded as collect["final_norm_out"]),
    through lm_head or, with tied weights, the token embedding."""
    if collect is not None:
        collect["final_norm_out"] = h
    head = "model.embed_tokens" if spec["tie_word_embeddings"] else "lm_head"
    return proj(p, head, h, adapters)


def llama_forward(spec, p, input_ids=None, inputs_embeds=None, position_ids=None, key_mask=None,
                  adapters=None, cache=None, collect=None, naive=False):
    """Returns logits [B, T, V]. key_mask: [B, past+T] (1 = real token). cache: list to fill/extend."""
    h = inputs_embeds if inputs_embeds is not None else p["model.embed_tokens.weight"][input_ids].float()
    B, T, _ = h.shape
    past, key_mask, position_ids = positions(h, cache, key_mask, position_ids)
    cos, sin = rope_cos_sin(rope_inv_freq(spec), position_ids)
    masks = {}  # by window
    eps = spec["rms_norm_eps"]
    if collect is not None:
        collect["embeddings"] = h
    for i in range(spec["num_hidden_layers"]):
        pre = f"model.layers.{i}."
        x = rms_norm(h, p[pre + "input_layernorm.weight"], eps)
        w = layer_window(spec, i)
        if w not in masks:
            masks[w] = build_attn_mask(key_mask, T, past, w)
        h = h + llama_attention(spec, p, pre + "self_attn.", x, cos, sin, masks[w], adapters, cache, i,
                                naive=naive, key_mask=key_mask)
        x = rms_norm(h, p[pre + "post_attention_layernorm.weight"], eps)
        m = F.silu(proj(p, pre + "mlp.gate_proj", x, adapters)) * proj(p, pre + "mlp.up_proj", x, adapters)
        h = h + proj(p, pre + "mlp.down_proj", m, adapters)
        if collect is not None:
            collect[f"layer_out.{i}"] = h
    h = rms_norm(h, p["model.norm.weight"], eps)
    return lm_head(spec, p, h, adapters, collect)


# --------------------------------------------------------------------------------------------
# GPT-2
# --------------------------------------------------------------------------------------------
def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gpt2_attention(spec, p, pre, x, add_mask, adapters, cache, layer, naive=False, key_mask=None):
    B, T, C = x.shape
    H = spec["n_head"]
    hd = C // H
    qkv = proj(p, pre + "c_attn", x, adapters, conv1d=True)
    q, k, v = qkv.split(C, dim=2)
    q = q.view(B, T, H, hd).permute(0, 2, 1, 3)
    k = k.view(B, T, H, hd).permute(0, 2, 1, 3)
    v = v.view(B, T, H, hd).permute(0, 2, 1, 3)
    if naive:
        out = torch.zeros(B, T, H, hd)
        for b in range(B):
            for h in range(H):
                for t in range(T):
                    if not key_mask[b, t]:
                        continue
                    idx = [s for s in range(t + 1) if key_mask[b, s]]
                    sc = torch.stack([(q[b, h, t] * k[b, h, s]).sum() / math.sqrt(hd) for s in idx])
                    pr = torch.exp(sc - sc.max())
                    pr = pr / pr.sum()
                    out[b, t, h] = sum(pr[i] * v[b, h, s] for i, s in enumerate(idx))
        out = out.reshape(B, T, C)
    else:
        if cache is not None:
            if len(cache) > layer:
                pk, pv = cache[layer]
                k = torch.cat([pk, k], dim=-2)
                v = torch.cat([pv, v], dim=-2)
                cache[layer] = (k, v)
            else:
                cache.append((k, v))
        w = torch.matmul(q, k.transpose(-1, -2))
        w = w / torch.full([], v.size(-1) ** 0.5, dtype=w.dtype)  # scale_attn_weights
        w = w + add_mask
        w = F.softmax(w, dim=-1)
        out = torch.matmul(w, v).permute(0, 2, 1, 3).contiguous().view(B, T, C)
    return proj(p, pre + "c_proj", out, adapters, conv1d=True)


def gpt2_forward(spec, p, input_ids=None, inputs_embeds=None, position_ids=None, key_mask=None,
                 adapters=None, cache=None, collect=None, naive=False):
    h_in = inputs_embeds if inputs_embeds is not None else p["transformer.wte.weight"][input_ids].float()
    B, T, C = h_in.shape
    past, key_mask, position_ids = positions(h_in, cache, key_mask, position_ids)
    h = h_in + p["transformer.wpe.weight"][position_ids].float()
    add_mask = build_attn_mask(key_mask, T, past)
    eps = spec["layer_norm_epsilon"]
    if collect is not None:
        collect["embeddings"] = h
    for i in range(spec["n_layer"]):
        pre = f"transformer.h.{i}."
        x = F.layer_norm(h, (C,), p[pre + "ln_1.weight"], p[pre + "ln_1.bias"], eps)
        h = h + gpt2_attention(spec, p, pre + "attn.", x, add_mask, adapters, cache, i, naive=naive,
                               key_mask=key_mask)
        x = F.layer_norm(h, (C,), p[pre + "ln_2.weight"], p[pre + "ln_2.bias"], eps)
        m = gelu_new(proj(p, pre + "mlp.c_fc", x, adapters, conv1d=True))
        h = h + proj(p, pre + "mlp.c_proj", m, adapters, conv1d=True)
        if collect is not None:
            collect[f"layer_out.{i}"] = h
    h = F.layer_norm(h, (C,), p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], eps)
    if collect is not None:
        collect["final_norm_out"] = h
    return F.linear(h, p["transformer.wte.weight"])  # lm_head tied to wte


# --------------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------------
def _family(model_type):
    """The module of a family written in its own file (gemma3.py, phi3.py), or None for this file's."""
    if model_type == "gemma3_text":
        import gemma3
        return gemma3
    if model_type == "phi3":
        import phi3
        return phi3
    return None


class Model:
    def __init__(self, name, config, spec, params):
        self.name = name
        self.config = config  # config.json dict
        self.spec = spec  # the numbers the math needs
        self.params = params  # {checkpoint key: tensor in storage dtype}
        self.is_gpt2 = config["model_type"] == "gpt2"
        self.family = _family(config["model_type"])

    def compute_params(self):
        """float32 copies of the parameters (bf16/f16 storage upcast exactly)."""
        return {k: v.float() for k, v in self.params.items()}

    def embed_key(self):
        return "transformer.wte.weight" if self.is_gpt2 else "model.embed_tokens.weight"

    def embed(self, p, ids):
        """What the model's embedding layer outputs for ids (the inputs_embeds it is equivalent to)."""
        if self.config["model_type"] == "gemma3_text":
            return self.family.embed(self.spec, p, ids, self.params["model.embed_tokens.weight"].dtype)
        return p[self.embed_key()][ids]

    def forward(self, p, **kw):
        if self.family is not None:
            if self.config["model_type"] == "gemma3_text":
                kw["dtype"] = self.params["model.embed_tokens.weight"].dtype
            return self.family.forward(self.spec, p, **kw)
        fn = gpt2_forward if self.is_gpt2 else llama_forward
        return fn(self.spec, p, **kw)

    def linear_modules(self):
        """[(module path, conv1d?)] of every projection inside the decoder layers."""
        out = []
        if self.is_gpt2:
            for i in range(self.spec["n_layer"]):
                for n in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
                    out.append((f"transformer.h.{i}.{n}", True))
        else:
            names = self.family.LINEAR if self.family is not None else (
                "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
            for i in range(self.spec["num_hidden_layers"]):
                for n in names:
                    out.append((f"model.layers.{i}.{n}", False))
        return out


def greedy(model, p, prompt, max_new_tokens, use_cache, adapters=None):
    """Greedy decoding of one unpadded prompt. Returns (new tokens, per-step top1-top2 margins)."""
    ids = list(prompt)
    new, margins = [], []
    cache = [] if use_cache else None
    with torch.no_grad():
        for step in range(max_new_tokens):
            if use_cache and step > 0:
                x = torch.tensor([[ids[-1]]])
                pos = torch.tensor([[len(ids) - 1]])
                logits = model.forward(p, input_ids=x, position_ids=pos, cache=cache, adapters=adapters)
            else:
                x = torch.tensor([ids])
                logits = model.forward(p, input_ids=x, cache=cache, adapters=adapters)
            last = logits[0, -1]
            top = torch.topk(last, 2).values
            margins.append(float(top[0] - top[1]))
            tok = int(torch.argmax(last))
            ids.append(tok)
            new.append(tok)
    return new, margins


# --------------------------------------------------------------------------------------------
# loading a Hugging Face model folder (used by check_adapter.py)
# --------------------------------------------------------------------------------------------
def spec_from_config(cfg):
    mt = cfg["model_type"]
    if mt == "gpt2":
        C = cfg["n_embd"]
        return {"n_head": cfg["n_head"], "n_layer": cfg["n_layer"], "layer_norm_epsilon": cfg["layer_norm_epsilon"],
                "n_inner": cfg.get("n_inner") or 4 * C}
    if _family(mt) is not None:
        return _family(mt).spec_from_config(cfg)
    if mt not in ("llama", "mistral", "qwen2", "qwen3", "smollm3"):
        raise ValueError(f"unsupported model_type {mt}")
    H = cfg["num_attention_heads"]
    L = cfg["num_hidden_layers"]
    spec = {
        "num_attention_heads": H,
        "num_key_value_heads": cfg.get("num_key_value_heads") or H,
        "head_dim": cfg.get("head_dim") or (128 if mt == "qwen3" else cfg["hidden_size"] // H),
        "num_hidden_layers": L,
        "rms_norm_eps": cfg["rms_norm_eps"],
        "rope_theta": cfg.get("rope_theta", 2000000.0 if mt == "smollm3" else 10000.0),
        "rope_scaling": cfg.get("rope_scaling"),
        "tie_word_embeddings": cfg.get("tie_word_embeddings", mt == "smollm3"),
        "intermediate_size": cfg["intermediate_size"],
        "qk_norm": mt == "qwen3",
    }
    layer_rope = [True] * L
    if mt == "smollm3":
        nr = cfg.get("no_rope_layers")
        layer_rope = [bool(x) for x in nr[:L]] if nr is not None else \
            [(i + 1) % cfg.get("no_rope_layer_interval", 4) != 0 for i in range(L)]
    spec["layer_rope"] = layer_rope
    windows = [0] * L
    sw = cfg.get("sliding_window")
    if mt == "mistral" and sw:
        windows = [sw] * L
    elif mt in ("qwen2", "qwen3") and cfg.get("use_sliding_window") and sw:
        types = cfg.get("layer_types") or ["sliding_attention" if i >= cfg.get("max_window_layers", 28) else
                                           "full_attention" for i in range(L)]
        windows = [sw if t == "sliding_attention" else 0 for t in types]
    elif mt == "smollm3" and cfg.get("use_sliding_window") and sw:
        types = cfg.get("layer_types") or ["full_attention" if layer_rope[i] else "sliding_attention" for i in range(L)]
        windows = [sw if t == "sliding_attention" else 0 for t in types]
    spec["layer_windows"] = windows
    return spec


def load_model_folder(path):
    import json
    import os

    import st

    with open(os.path.join(path, "config.json")) as f:
        cfg = json.load(f)
    single = os.path.join(path, "model.safetensors")
    if os.path.exists(single):
        params = st.load_file(single)
    else:
        with open(os.path.join(path, "model.safetensors.index.json")) as f:
            index = json.load(f)
        params = {}
        for shard in sorted(set(index["weight_map"].values())):
            params.update(st.load_file(os.path.join(path, shard)))
    name = os.path.basename(os.path.normpath(path))
    return Model(name, cfg, spec_from_config(cfg), params)
