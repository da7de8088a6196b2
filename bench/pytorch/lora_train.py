# A plain PyTorch LoRA training loop: the reference side of `npm run bench -- --compare-pytorch`.
#
# It is written the way a user without transformers / peft would write it: the model's modules
# (llama, qwen3 or gpt2, as transformers defines them; qwen3 is llama with an RMSNorm over each
# head of q and k before RoPE and head_dim from the config), a LoRA wrapper with PEFT's semantics, the base
# frozen, requires_grad only on lora_A / lora_B, torch.optim.AdamW, loss.backward(),
# optimizer.step(), zero_grad(set_to_none=True). Everything in float32.
#
#   python3 lora_train.py --model DIR --adapter DIR --batches FILE --batch B --seq T \
#       --warmup 1 --steps N [--threads 1]
#   python3 lora_train.py --probe            # torch version, threads, BLAS (JSON)
#
# The weights come from a Hugging Face folder (config.json, model.safetensors) and the initial
# adapter from a PEFT folder (adapter_config.json, adapter_model.safetensors), both written by
# lorakit. The batches file holds (warmup + steps) · B · T int32 token ids, little-endian.
# Labels are the inputs (transformers' causal LM loss: predict token t + 1 at position t,
# mean over the B · (T − 1) targets).
#
# The last line printed is one JSON object: per-step seconds after warm-up, every step's loss,
# peak RSS (getrusage ru_maxrss, the whole process life) and the thread settings.
import argparse
import ctypes
import json
import math
import resource
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------- safetensors

_DTYPES = {'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16}


def read_safetensors(path):
    """Yields (name, tensor), reading one tensor at a time (each owns its buffer: no second copy)."""
    with open(path, 'rb') as f:
        (n,) = struct.unpack('<Q', f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        for name, info in header.items():
            if name == '__metadata__':
                continue
            start, end = info['data_offsets']
            buf = bytearray(end - start)
            f.seek(base + start)
            f.readinto(buf)
            dtype = _DTYPES[info['dtype']]
            t = torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
            yield name, t.reshape(info['shape']).float()


# ---------------------------------------------------------------- layers


class Conv1D(nn.Module):
    """GPT-2's projection: weight stored [in, out], y = x @ W + b."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out, device='meta'))
        self.bias = nn.Parameter(torch.empty(n_out, device='meta'))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], -1)


class LoraLayer(nn.Module):
    """PEFT's lora.Linear: y = base(x) + lora_B(lora_A(dropout(x))) · alpha / r.
    For a Conv1D base (fan_in_fan_out) lora_A is still [r, in] and lora_B [out, r]."""

    def __init__(self, base, n_in, n_out, r, alpha, dropout):
        super().__init__()
        self.base_layer = base
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_A = nn.Linear(n_in, r, bias=False)
        self.lora_B = nn.Linear(r, n_out, bias=False)
        self.scaling = alpha / r

    def forward(self, x):
        return self.base_layer(x) + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling


def causal_attention(q, k, v):
    """q, k, v [B, H, T, D] → [B, H, T, D]: softmax(q kᵀ / √D + causal mask) v."""
    T, D = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-1, -2) / math.sqrt(D)
    mask = torch.full((T, T), float('-inf')).triu(1)
    return torch.softmax(scores + mask, dim=-1) @ v


# ---------------------------------------------------------------- llama


class RMSNorm(nn.Module):
    def __init__(self, C, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(C, device='meta'))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class LlamaAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C = cfg['hidden_size']
        self.H = cfg['num_attention_heads']
        self.Hkv = cfg.get('num_key_value_heads', self.H)
        self.D = cfg.get('head_dim', C // self.H)
        bias = cfg.get('attention_bias', False)
        self.q_proj = nn.Linear(C, self.H * self.D, bias=bias, device='meta')
        self.k_proj = nn.Linear(C, self.Hkv * self.D, bias=bias, device='meta')
        self.v_proj = nn.Linear(C, self.Hkv * self.D, bias=bias, device='meta')
        self.o_proj = nn.Linear(self.H * self.D, C, bias=bias, device='meta')
        self.qk_norm = cfg['model_type'] == 'qwen3'
        if self.qk_norm:  # Qwen3: RMSNorm over each head, before RoPE
            self.q_norm = RMSNorm(self.D, cfg.get('rms_norm_eps', 1e-6))
            self.k_norm = RMSNorm(self.D, cfg.get('rms_norm_eps', 1e-6))

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.H, self.D)
        k = self.k_proj(x).view(B, T, self.Hkv, self.D)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.Hkv, self.D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.Hkv != self.H:
            k = k.repeat_interleave(self.H // self.Hkv, dim=1)
            v = v.repeat_interleave(self.H // self.Hkv, dim=1)
        y = causal_attention(q, k, v)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.H * self.D))


class LlamaMLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, I = cfg['hidden_size'], cfg['intermediate_size']
        self.gate_proj = nn.Linear(C, I, bias=False, device='meta')
        self.up_proj = nn.Linear(C, I, bias=False, device='meta')
        self.down_proj = nn.Linear(I, C, bias=False, device='meta')

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        eps = cfg.get('rms_norm_eps', 1e-6)
        self.input_layernorm = RMSNorm(cfg['hidden_size'], eps)
        self.self_attn = LlamaAttention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg['hidden_size'], eps)
        self.mlp = LlamaMLP(cfg)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C = cfg['hidden_size']
        self.embed_tokens = nn.Embedding(cfg['vocab_size'], C, device='meta')
        self.layers = nn.ModuleList(LlamaLayer(cfg) for _ in range(cfg['num_hidden_layers']))
        self.norm = RMSNorm(C, cfg.get('rms_norm_eps', 1e-6))
        H = cfg['num_attention_heads']
        D = cfg.get('head_dim', C // H)
        theta = cfg.get('rope_theta', 10000.0)
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float32) / D))

    def forward(self, ids):
        T = ids.shape[1]
        freqs = torch.outer(torch.arange(T, dtype=torch.float32), self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.norm(x)


class LlamaForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.model = LlamaModel(cfg)
        self.tied = cfg.get('tie_word_embeddings', False)
        if not self.tied:
            self.lm_head = nn.Linear(cfg['hidden_size'], cfg['vocab_size'], bias=False, device='meta')

    def forward(self, ids):
        h = self.model(ids)
        return F.linear(h, self.model.embed_tokens.weight) if self.tied else self.lm_head(h)


# ---------------------------------------------------------------- gpt2


class GPT2Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C = cfg['n_embd']
        self.H = cfg['n_head']
        self.c_attn = Conv1D(C, 3 * C)
        self.c_proj = Conv1D(C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        y = causal_attention(q, k, v)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class GPT2MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C = cfg['n_embd']
        I = cfg.get('n_inner') or 4 * C
        self.c_fc = Conv1D(C, I)
        self.c_proj = Conv1D(I, C)
        act = cfg.get('activation_function', 'gelu_new')
        self.approximate = 'none' if act == 'gelu' else 'tanh'

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate))


class GPT2Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, eps = cfg['n_embd'], cfg.get('layer_norm_epsilon', 1e-5)
        self.ln_1 = nn.LayerNorm(C, eps=eps, device='meta')
        self.attn = GPT2Attention(cfg)
        self.ln_2 = nn.LayerNorm(C, eps=eps, device='meta')
        self.mlp = GPT2MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C = cfg['n_embd']
        self.wte = nn.Embedding(cfg['vocab_size'], C, device='meta')
        self.wpe = nn.Embedding(cfg['n_positions'], C, device='meta')
        self.h = nn.ModuleList(GPT2Block(cfg) for _ in range(cfg['n_layer']))
        self.ln_f = nn.LayerNorm(C, eps=cfg.get('layer_norm_epsilon', 1e-5), device='meta')

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


class GPT2LMHeadModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.transformer = GPT2Model(cfg)

    def forward(self, ids):
        return F.linear(self.transformer(ids), self.transformer.wte.weight)  # tied head


# ---------------------------------------------------------------- loading


def assign(model, key, tensor):
    """Puts a loaded tensor in place of the (meta) parameter `key`, frozen: what
    load_state_dict(assign=True) does in newer torch, without copying."""
    *path, leaf = key.split('.')
    mod = model
    for p in path:
        mod = getattr(mod, p)
    old = getattr(mod, leaf)
    if tuple(old.shape) != tuple(tensor.shape):
        raise ValueError(f'{key}: checkpoint shape {tuple(tensor.shape)}, model {tuple(old.shape)}')
    setattr(mod, leaf, nn.Parameter(tensor, requires_grad=False))


def load_model(folder):
    with open(f'{folder}/config.json') as f:
        cfg = json.load(f)
    model = {'llama': LlamaForCausalLM, 'qwen3': LlamaForCausalLM, 'gpt2': GPT2LMHeadModel}[cfg['model_type']](cfg)
    wanted = {k for k, _ in model.named_parameters()}
    tied = cfg['model_type'] == 'gpt2' or cfg.get('tie_word_embeddings', False)
    for name, t in read_safetensors(f'{folder}/model.safetensors'):
        if name == 'lm_head.weight' and tied:
            continue  # tied to the token embedding
        assign(model, name, t)
        wanted.discard(name)
    if wanted:
        raise ValueError(f'{folder}: missing tensors {sorted(wanted)}')
    return model, cfg


def add_lora(model, folder):
    """get_peft_model with the adapter folder's config, then its tensors as the initial A and B."""
    with open(f'{folder}/adapter_config.json') as f:
        acfg = json.load(f)
    r, alpha, dropout = acfg['r'], acfg['lora_alpha'], acfg.get('lora_dropout', 0.0)
    targets = acfg['target_modules']
    model.requires_grad_(False)
    wrapped = {}
    for name, mod in list(model.named_modules()):
        if not name or name.split('.')[-1] not in targets:
            continue
        if isinstance(mod, Conv1D):
            n_in, n_out = mod.weight.shape
        else:
            n_out, n_in = mod.weight.shape
        *path, leaf = name.split('.')
        parent = model.get_submodule('.'.join(path))
        setattr(parent, leaf, LoraLayer(mod, n_in, n_out, r, alpha, dropout))
        wrapped[name] = getattr(parent, leaf)
    missing = {f'{n}.{ab}' for n in wrapped for ab in ('lora_A', 'lora_B')}
    for key, t in read_safetensors(f'{folder}/adapter_model.safetensors'):
        # base_model.model.<module>.lora_A.weight
        mod, ab = key[len('base_model.model.'):].rsplit('.', 2)[:2]
        layer = getattr(wrapped[mod], ab)
        with torch.no_grad():
            layer.weight.copy_(t)
        missing.discard(f'{mod}.{ab}')
    if missing:
        raise ValueError(f'{folder}: missing adapter tensors {sorted(missing)}')
    return [p for p in model.parameters() if p.requires_grad]


# ---------------------------------------------------------------- main


def blas_info():
    """Which BLAS torch calls: the library behind libblas.so.3 and its thread count."""
    try:
        ob = ctypes.CDLL('libopenblas.so.0')
        ob.openblas_get_config.restype = ctypes.c_char_p
        return f'{ob.openblas_get_config().decode()}, {ob.openblas_get_num_threads()} threads'
    except OSError:
        return 'BLAS_INFO=' + next((s.split('=')[1] for s in torch.__config__.show().replace(',', '\n').split('\n') if 'BLAS_INFO' in s), '?')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--probe', action='store_true')
    ap.add_argument('--model')
    ap.add_argument('--adapter')
    ap.add_argument('--batches')
    ap.add_argument('--batch', type=int)
    ap.add_argument('--seq', type=int)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--steps', type=int)
    ap.add_argument('--threads', type=int, default=0, help='torch.set_num_threads (0: torch default)')
    ap.add_argument('--lr', type=float, default=1e-4)
    ap.add_argument('--weight-decay', type=float, default=0.01)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.probe:
        print(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads(), 'blas': blas_info()}))
        return

    model, _ = load_model(a.model)
    params = add_lora(model, a.adapter)
    model.train()
    optimizer = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=a.weight_decay)
    B, T, total = a.batch, a.seq, a.warmup + a.steps
    with open(a.batches, 'rb') as f:
        ids = torch.frombuffer(bytearray(f.read()), dtype=torch.int32).long().view(total, B, T)

    losses, step_seconds = [], []
    for s in range(total):
        inputs = ids[s]
        t0 = time.perf_counter()
        logits = model(inputs)
        # transformers' ForCausalLMLoss: labels shifted left, the last position ignored
        labels = F.pad(inputs[:, 1:], (0, 1), value=-100)
        loss = F.cross_entropy(logits.reshape(B * T, -1), labels.reshape(-1), ignore_index=-100)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if s >= a.warmup:
            step_seconds.append(dt)

    print(json.dumps({
        'stepSeconds': step_seconds,
        'losses': losses,
        'peakRssBytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        'tokensPerStep': B * T,
        'threads': torch.get_num_threads(),
        'blas': blas_info(),
    }))


if __name__ == '__main__':
    sys.exit(main())
