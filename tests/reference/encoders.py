"""BERT, RoBERTa and ViT classification forwards in plain PyTorch, written from transformers'
modeling_bert.py / modeling_roberta.py / modeling_vit.py (eval mode: dropout off).

Facts used:
- BertEmbeddings: word[ids] + position[pos] + token_type[tt], then LayerNorm (layer_norm_eps);
  BERT positions are 0..T-1; RoBERTa's are cumsum(ids != pad) * (ids != pad) + pad
  (create_position_ids_from_input_ids).
- BertLayer (post-LN): h = LN(attn_out_dense(attn(x)) + x) with attention.output.LayerNorm;
  y = LN(output.dense(gelu(intermediate.dense(h))) + h) with output.LayerNorm. Scores are
  q.k / sqrt(D) plus an additive mask (1 - mask) * finfo(float32).min over the keys.
- BertForSequenceClassification: tanh(pooler.dense(h[:, 0])) -> classifier.
  RobertaForSequenceClassification: classifier.dense -> tanh -> classifier.out_proj on h[:, 0].
- ViTEmbeddings: Conv2d(patch, stride=patch) -> flatten(2).transpose(1, 2), [CLS] first, plus
  position_embeddings. ViTLayer (pre-LN): h = x + attn(layernorm_before(x));
  y = h + output.dense(gelu(intermediate.dense(layernorm_after(h)))). vit.layernorm, then the
  classifier on h[:, 0].
"""
import math

import torch
import torch.nn.functional as F

from models import proj

BERT_NAMES = dict(q="attention.self.query", k="attention.self.key", v="attention.self.value", o="attention.output.dense",
                  norm1="attention.output.LayerNorm", fc="intermediate.dense", proj="output.dense", norm2="output.LayerNorm")
VIT_NAMES = dict(q="attention.attention.query", k="attention.attention.key", v="attention.attention.value",
                 o="attention.output.dense", norm1="layernorm_before", fc="intermediate.dense", proj="output.dense",
                 norm2="layernorm_after")


def layer_norm(p, path, x, eps):
    return F.layer_norm(x, (x.shape[-1],), p[path + ".weight"], p[path + ".bias"], eps)


def self_attention(p, pre, names, x, add_mask, heads, adapters):
    B, T, C = x.shape
    D = C // heads

    def split(t):
        return t.view(B, T, heads, D).transpose(1, 2)

    q = split(proj(p, pre + names["q"], x, adapters))
    k = split(proj(p, pre + names["k"], x, adapters))
    v = split(proj(p, pre + names["v"], x, adapters))
    s = q @ k.transpose(-1, -2) / math.sqrt(D)
    if add_mask is not None:
        s = s + add_mask[:, None, None, :]
    a = torch.softmax(s, dim=-1) @ v
    a = a.transpose(1, 2).reshape(B, T, C)
    return proj(p, pre + names["o"], a, adapters)


def roberta_positions(ids, pad):
    m = (ids != pad).int()
    return (torch.cumsum(m, dim=1).type_as(m) * m).long() + pad


def bert_forward(cfg, p, ids, tt, mask, adapters=None):
    """logits [B, L] of BertForSequenceClassification / RobertaForSequenceClassification."""
    mt = cfg["model_type"]
    pre = mt + "."
    eps = cfg["layer_norm_eps"]
    B, T = ids.shape
    if mt == "roberta":
        pos = roberta_positions(ids, cfg["pad_token_id"])
    else:
        pos = torch.arange(T).expand(B, T)
    e = (F.embedding(ids, p[pre + "embeddings.word_embeddings.weight"])
         + F.embedding(pos, p[pre + "embeddings.position_embeddings.weight"])
         + F.embedding(tt, p[pre + "embeddings.token_type_embeddings.weight"]))
    h = layer_norm(p, pre + "embeddings.LayerNorm", e, eps)
    add_mask = (1.0 - mask.float()) * torch.finfo(torch.float32).min
    for i in range(cfg["num_hidden_layers"]):
        lp = f"{pre}encoder.layer.{i}."
        a = self_attention(p, lp, BERT_NAMES, h, add_mask, cfg["num_attention_heads"], adapters)
        h1 = layer_norm(p, lp + BERT_NAMES["norm1"], a + h, eps)
        f = F.gelu(proj(p, lp + BERT_NAMES["fc"], h1, adapters))
        h = layer_norm(p, lp + BERT_NAMES["norm2"], proj(p, lp + BERT_NAMES["proj"], f, adapters) + h1, eps)
    x = h[:, 0]
    if mt == "roberta":
        x = torch.tanh(proj(p, "classifier.dense", x, adapters))
        return proj(p, "classifier.out_proj", x, adapters)
    x = torch.tanh(proj(p, pre + "pooler.dense", x, adapters))
    return proj(p, "classifier", x, adapters)


def vit_forward(cfg, p, pixels, adapters=None):
    """logits [B, L] of ViTForImageClassification."""
    eps = cfg["layer_norm_eps"]
    ps = cfg["patch_size"]
    x = F.conv2d(pixels, p["vit.embeddings.patch_embeddings.projection.weight"],
                 p["vit.embeddings.patch_embeddings.projection.bias"], stride=ps)
    x = x.flatten(2).transpose(1, 2)
    B = x.shape[0]
    h = torch.cat([p["vit.embeddings.cls_token"].expand(B, -1, -1), x], dim=1) + p["vit.embeddings.position_embeddings"]
    for i in range(cfg["num_hidden_layers"]):
        lp = f"vit.encoder.layer.{i}."
        a = self_attention(p, lp, VIT_NAMES, layer_norm(p, lp + VIT_NAMES["norm1"], h, eps), None,
                           cfg["num_attention_heads"], adapters)
        h = h + a
        f = F.gelu(proj(p, lp + VIT_NAMES["fc"], layer_norm(p, lp + VIT_NAMES["norm2"], h, eps), adapters))
        h = h + proj(p, lp + VIT_NAMES["proj"], f, adapters)
    h = layer_norm(p, "vit.layernorm", h, eps)
    return proj(p, "classifier", h[:, 0], adapters)
