"""Writes tests/fixtures/encoders/: tiny BERT, RoBERTa and ViT classification checkpoints in
the Hugging Face layout, a LoRA adapter for each (query/value, classifier in modules_to_save) as
PEFT writes it, and the reference outputs tests/parity/encoders.test.ts compares against.

    /usr/bin/python3 tests/reference/make_encoder_fixtures.py      (deterministic; about 1 s)

Models (forwards in encoders.py): hidden 16, 2 layers, 4 heads, MLP 32, exact gelu, random
weights N(0, 0.2) with perturbed norms and biases.
  bert/     BertForSequenceClassification, vocab 64, 16 positions, type_vocab_size 2, labels
            negative/neutral/positive; batch of 3 sentence pairs [CLS] a [SEP] b [SEP], T = 9,
            right padded, token types 0/1.
  roberta/  RobertaForSequenceClassification (classifier.dense + classifier.out_proj, no pooler),
            pad 1, 18 positions (padding_idx-offset), type_vocab_size 1, labels no/yes; single texts.
  vit/      ViTForImageClassification, 16x16 RGB images, patch 4 (16 patches + [CLS]), labels
            circle/square/triangle, preprocessor_config.json (ViTImageProcessor, ImageNet mean/std),
            image0.png (20x12) and image1.png (9x9) whose pixel_values are computed as transformers
            does (PIL bilinear resize of the uint8 image, rescale in float64 then float32, normalize);
            the batch is those two plus one random row.
Each folder: config.json (sorted, indent 2), model.safetensors, reference.json (labels, the batch,
loss, base_loss), reference.safetensors:
  base.logits [3, L]                      no adapter
  base.grad.pixel_values [3, 3, 16, 16]   vit: d mean-CE / d pixels without adapter (conv backward)
  logits [3, L]                           with the adapter (LoRA r 4, alpha 8, s = 2, non-zero B;
                                          the modules_to_save copy = the head + noise)
  grad.<PEFT key>                         d mean-CE / d every lora_A, lora_B and head tensor, e.g.
                                          grad.base_model.model.classifier.weight
  merged.<module>.weight                  W + s·B·A of every query/value
adapter/: adapter_config.json (PEFT 0.14 fields, task_type SEQ_CLS, target_modules [query, value],
modules_to_save [classifier]) and adapter_model.safetensors: base_model.model.<path>.lora_A.weight,
…lora_B.weight, and the head copy as PEFT saves it after stripping "modules_to_save.default":
base_model.model.classifier.weight / .bias (RoBERTa: classifier.dense.*, classifier.out_proj.*).
"""
import argparse
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

import encoders as E  # noqa: E402
import lora as L  # noqa: E402
import st  # noqa: E402

TRANSFORMERS_VERSION = "4.46.3"
HIDDEN, LAYERS, HEADS, INTER = 16, 2, 4, 32
R, ALPHA = 4, 8


def dumps_hf(d):
    return json.dumps(d, indent=2, sort_keys=True) + "\n"


def labels_cfg(names):
    return {"id2label": {str(i): n for i, n in enumerate(names)}, "label2id": {n: i for i, n in enumerate(names)}}


def bert_config():
    return {"architectures": ["BertForSequenceClassification"], "attention_probs_dropout_prob": 0.1,
            "classifier_dropout": None, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": HIDDEN,
            **labels_cfg(["negative", "neutral", "positive"]), "initializer_range": 0.02, "intermediate_size": INTER,
            "layer_norm_eps": 1e-12, "max_position_embeddings": 16, "model_type": "bert",
            "num_attention_heads": HEADS, "num_hidden_layers": LAYERS, "pad_token_id": 0,
            "position_embedding_type": "absolute", "torch_dtype": "float32",
            "transformers_version": TRANSFORMERS_VERSION, "type_vocab_size": 2, "use_cache": True, "vocab_size": 64}


def roberta_config():
    return {"architectures": ["RobertaForSequenceClassification"], "attention_probs_dropout_prob": 0.1,
            "bos_token_id": 0, "classifier_dropout": None, "eos_token_id": 2, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "hidden_size": HIDDEN, **labels_cfg(["no", "yes"]),
            "initializer_range": 0.02, "intermediate_size": INTER, "layer_norm_eps": 1e-05,
            "max_position_embeddings": 18, "model_type": "roberta", "num_attention_heads": HEADS,
            "num_hidden_layers": LAYERS, "pad_token_id": 1, "position_embedding_type": "absolute",
            "torch_dtype": "float32", "transformers_version": TRANSFORMERS_VERSION, "type_vocab_size": 1,
            "use_cache": True, "vocab_size": 64}


def vit_config():
    return {"architectures": ["ViTForImageClassification"], "attention_probs_dropout_prob": 0.0,
            "encoder_stride": 4, "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "hidden_size": HIDDEN,
            **labels_cfg(["circle", "square", "triangle"]), "image_size": 16, "initializer_range": 0.02,
            "intermediate_size": INTER, "layer_norm_eps": 1e-12, "model_type": "vit",
            "num_attention_heads": HEADS, "num_channels": 3, "num_hidden_layers": LAYERS, "patch_size": 4,
            "qkv_bias": True, "torch_dtype": "float32", "transformers_version": TRANSFORMERS_VERSION}


def vit_preprocessor():
    return {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.485, 0.456, 0.406],
            "image_processor_type": "ViTImageProcessor", "image_std": [0.229, 0.224, 0.225], "resample": 2,
            "rescale_factor": 0.00392156862745098, "size": {"height": 16, "width": 16}}


def layer_shapes(pre, names, C, H):
    s = {}
    for n in ("q", "k", "v", "o"):
        s[f"{pre}{names[n]}.weight"] = (C, C)
        s[f"{pre}{names[n]}.bias"] = (C,)
    for n in ("norm1", "norm2"):
        s[f"{pre}{names[n]}.weight"] = (C,)
        s[f"{pre}{names[n]}.bias"] = (C,)
    s[f"{pre}{names['fc']}.weight"] = (H, C)
    s[f"{pre}{names['fc']}.bias"] = (H,)
    s[f"{pre}{names['proj']}.weight"] = (C, H)
    s[f"{pre}{names['proj']}.bias"] = (C,)
    return s


def param_shapes(cfg):
    C, H, mt = cfg["hidden_size"], cfg["intermediate_size"], cfg["model_type"]
    L_ = len(cfg["id2label"])
    s = {}
    if mt in ("bert", "roberta"):
        pre = mt + "."
        s[pre + "embeddings.word_embeddings.weight"] = (cfg["vocab_size"], C)
        s[pre + "embeddings.position_embeddings.weight"] = (cfg["max_position_embeddings"], C)
        s[pre + "embeddings.token_type_embeddings.weight"] = (cfg["type_vocab_size"], C)
        s[pre + "embeddings.LayerNorm.weight"] = (C,)
        s[pre + "embeddings.LayerNorm.bias"] = (C,)
        for i in range(cfg["num_hidden_layers"]):
            s.update(layer_shapes(f"{pre}encoder.layer.{i}.", E.BERT_NAMES, C, H))
        if mt == "roberta":
            s.update({"classifier.dense.weight": (C, C), "classifier.dense.bias": (C,),
                      "classifier.out_proj.weight": (L_, C), "classifier.out_proj.bias": (L_,)})
        else:
            s.update({"bert.pooler.dense.weight": (C, C), "bert.pooler.dense.bias": (C,),
                      "classifier.weight": (L_, C), "classifier.bias": (L_,)})
    else:
        P = (cfg["image_size"] // cfg["patch_size"]) ** 2
        ps = cfg["patch_size"]
        s["vit.embeddings.cls_token"] = (1, 1, C)
        s["vit.embeddings.position_embeddings"] = (1, P + 1, C)
        s["vit.embeddings.patch_embeddings.projection.weight"] = (C, cfg["num_channels"], ps, ps)
        s["vit.embeddings.patch_embeddings.projection.bias"] = (C,)
        for i in range(cfg["num_hidden_layers"]):
            s.update(layer_shapes(f"vit.encoder.layer.{i}.", E.VIT_NAMES, C, H))
        s.update({"vit.layernorm.weight": (C,), "vit.layernorm.bias": (C,), "classifier.weight": (L_, C),
                  "classifier.bias": (L_,)})
    return s


def init_params(shapes, seed):
    """Random weights large enough that every layer matters: weights N(0, 0.2), biases and norms perturbed."""
    g = torch.Generator().manual_seed(seed)
    p = {}
    for name in sorted(shapes):
        shp = shapes[name]
        if "LayerNorm" in name or "layernorm" in name:
            base = 1.0 if name.endswith(".weight") else 0.0
            p[name] = (base + 0.1 * torch.randn(shp, generator=g)).contiguous()
        elif name.endswith(".bias"):
            p[name] = (0.05 * torch.randn(shp, generator=g)).contiguous()
        else:
            p[name] = (0.2 * torch.randn(shp, generator=g)).contiguous()
    return p


def text_batch(cfg, seed, pairs):
    """B = 3 rows of T = 9, right padded; with pairs: [CLS] a [SEP] b [SEP] and token types 0/1."""
    g = torch.Generator().manual_seed(seed)
    V = cfg["vocab_size"]
    pad = cfg["pad_token_id"]
    cls_id, sep_id = (2, 3) if cfg["model_type"] == "bert" else (0, 2)
    T = 9
    lengths = [(3, 2), (2, 1), (4, 1)] if pairs else [(5, 0), (3, 0), (7, 0)]
    ids = torch.full((3, T), pad, dtype=torch.long)
    tt = torch.zeros((3, T), dtype=torch.long)
    mask = torch.zeros((3, T), dtype=torch.long)
    for b, (la, lb) in enumerate(lengths):
        a = torch.randint(5, V, (la,), generator=g)
        row = [cls_id] + a.tolist() + [sep_id]
        types = [0] * len(row)
        if lb:
            bb = torch.randint(5, V, (lb,), generator=g)
            row += bb.tolist() + [sep_id]
            types += [1] * (lb + 1)
        ids[b, :len(row)] = torch.tensor(row)
        tt[b, :len(row)] = torch.tensor(types)
        mask[b, :len(row)] = 1
    labels = torch.tensor([0, 2, 1]) if len(cfg["id2label"]) == 3 else torch.tensor([1, 0, 1])
    return ids, tt, mask, labels


def make_adapters(p, targets, seed):
    g = torch.Generator().manual_seed(seed)
    scaling = ALPHA / R
    adapters = {}
    for name in sorted(p):
        path = name[: -len(".weight")]
        if not name.endswith(".weight") or path.rsplit(".", 1)[-1] not in targets:
            continue
        W = p[name]
        fan_out, fan_in = W.shape
        bound = 1.0 / fan_in ** 0.5
        A = ((torch.rand((R, fan_in), generator=g) * 2 - 1) * bound).contiguous()
        B = (torch.randn((fan_out, R), generator=g) * (0.3 / scaling)).contiguous()
        adapters[path] = L.LoraModule(A, B, scaling, False)
    return adapters


def trained_head(p, head_paths, seed):
    """The modules_to_save copy: the head's tensors plus noise (as if trained)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in sorted(p):
        if any(name.startswith(h + ".") for h in head_paths):
            out[name] = (p[name] + 0.1 * torch.randn(p[name].shape, generator=g)).contiguous()
    return out


def make_images():
    """Two RGB test images (PNG bytes): a 20x12 gradient with a disc and a 9x9 checker (upscaled to 16x16)."""
    yy, xx = np.mgrid[0:12, 0:20]
    a = np.stack([xx * 12, yy * 20, ((xx - 10) ** 2 + (yy - 6) ** 2 < 16) * 200 + 30], axis=-1).astype(np.uint8)
    c = (((np.mgrid[0:9, 0:9].sum(0)) % 2) * 180 + 40).astype(np.uint8)
    b = np.stack([c, 255 - c, np.full_like(c, 90)], axis=-1)
    out = []
    for arr in (a, b):
        buf = io.BytesIO()
        Image.fromarray(arr, "RGB").save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def preprocess(png_bytes, pp):
    """ViTImageProcessor: RGB, PIL bilinear resize of the uint8 image, rescale, normalize, channels first."""
    img = Image.open(io.BytesIO(png_bytes)).convert("RGB")
    img = img.resize((pp["size"]["width"], pp["size"]["height"]), resample=pp["resample"])
    # transformers' rescale: float64 product, cast to float32; normalize in float32
    x = (np.asarray(img).astype(np.float64) * pp["rescale_factor"]).astype(np.float32)
    x = (x - np.array(pp["image_mean"], dtype=np.float32)) / np.array(pp["image_std"], dtype=np.float32)
    return torch.from_numpy(x.transpose(2, 0, 1).copy())


def run(cfg, p, inputs, labels, adapters, head):
    """logits, loss and gradients (adapter A/B, head copy, pixels for ViT)."""
    q = dict(p)
    leaves = {}
    if head is not None:
        for k, v in head.items():
            q[k] = v.clone().requires_grad_(True)
            leaves["head." + k] = q[k]
    if adapters:
        for path, m in adapters.items():
            m.A = m.A.detach().clone().requires_grad_(True)
            m.B = m.B.detach().clone().requires_grad_(True)
            leaves["A." + path] = m.A
            leaves["B." + path] = m.B
    if cfg["model_type"] == "vit":
        pix = inputs.clone().requires_grad_(True)
        leaves["pixels"] = pix
        logits = E.vit_forward(cfg, q, pix, adapters)
    else:
        ids, tt, mask = inputs
        logits = E.bert_forward(cfg, q, ids, tt, mask, adapters)
    loss = F.cross_entropy(logits, labels)
    if leaves:
        loss.backward()
    grads = {k: v.grad.detach().clone() for k, v in leaves.items()}
    return logits.detach(), loss.detach(), grads


def write_text(path, text):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def fixture(name, cfg, root, seed, pp=None):
    p = init_params(param_shapes(cfg), seed)
    head_paths = ["classifier"]
    d = os.path.join(root, name)
    os.makedirs(os.path.join(d, "adapter"), exist_ok=True)
    write_text(os.path.join(d, "config.json"), dumps_hf(cfg))
    st.save_file(p, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    ref = {"model_type": cfg["model_type"], "labels": [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))]}
    tensors = {}
    if cfg["model_type"] == "vit":
        write_text(os.path.join(d, "preprocessor_config.json"), json.dumps(pp, indent=2, sort_keys=True) + "\n")
        pngs = make_images()
        for i, b in enumerate(pngs):
            with open(os.path.join(d, f"image{i}.png"), "wb") as f:
                f.write(b)
        pix = torch.stack([preprocess(b, pp) for b in pngs])
        g = torch.Generator().manual_seed(seed + 1)
        pix = torch.cat([pix, torch.randn((1,) + pix.shape[1:], generator=g)])  # a third, random row
        inputs = pix
        tensors["pixel_values"] = pix
        labels = torch.tensor([0, 2, 1])
    else:
        pairs = cfg["type_vocab_size"] >= 2
        ids, tt, mask, labels = text_batch(cfg, seed + 1, pairs)
        inputs = (ids, tt, mask)
        tensors.update({"input_ids": ids, "token_type_ids": tt, "attention_mask": mask})
        ref.update({"input_ids": ids.tolist(), "token_type_ids": tt.tolist(), "attention_mask": mask.tolist()})
    tensors["labels"] = labels
    ref["labels_batch"] = labels.tolist()

    base_logits, base_loss, base_grads = run(cfg, p, inputs, labels, None, None)
    tensors["base.logits"] = base_logits
    ref["base_loss"] = base_loss.item()
    if "pixels" in base_grads:
        tensors["base.grad.pixel_values"] = base_grads["pixels"]

    adapters = make_adapters(p, {"query", "value"}, seed + 2)
    head = trained_head(p, head_paths, seed + 3)
    logits, loss, grads = run(cfg, p, inputs, labels, adapters, head)
    assert (logits - base_logits).abs().max() > 0.05, "the adapter must change the logits"
    tensors["logits"] = logits
    ref["loss"] = loss.item()
    P = L.PEFT_PREFIX
    state = {}
    for path, m in adapters.items():
        state[f"{P}{path}.lora_A.weight"] = m.A.detach().contiguous()
        state[f"{P}{path}.lora_B.weight"] = m.B.detach().contiguous()
        tensors[f"grad.{P}{path}.lora_A.weight"] = grads["A." + path]
        tensors[f"grad.{P}{path}.lora_B.weight"] = grads["B." + path]
        tensors[f"merged.{path}.weight"] = m.merged_weight(p[path + ".weight"]).detach().contiguous()
    for k, v in head.items():
        # PEFT: base_model.model.classifier.modules_to_save.default.weight is saved as base_model.model.classifier.weight
        state[P + k] = v
        tensors[f"grad.{P}{k}"] = grads["head." + k]
    # the merged model (adapters folded in, head copy in place) reproduces the adapter's logits
    merged = dict(p)
    merged.update(head)
    for path, m in adapters.items():
        merged[path + ".weight"] = m.merged_weight(p[path + ".weight"]).detach()
    with torch.no_grad():
        ml = E.vit_forward(cfg, merged, inputs) if cfg["model_type"] == "vit" else E.bert_forward(cfg, merged, *inputs)
    assert (ml - logits).abs().max() < 2e-5, "merged weights must reproduce the adapter logits"
    acfg = L.peft_lora_config(os.path.relpath(d, os.path.join(root, "..", "..", "..")), R, ALPHA, ["query", "value"])
    acfg["task_type"] = "SEQ_CLS"
    acfg["modules_to_save"] = head_paths
    write_text(os.path.join(d, "adapter", "adapter_config.json"), L.dump_peft_config(acfg))
    st.save_file(state, os.path.join(d, "adapter", "adapter_model.safetensors"), metadata={"format": "pt"})
    write_text(os.path.join(d, "reference.json"), json.dumps(ref, indent=2, sort_keys=True) + "\n")
    st.save_file(tensors, os.path.join(d, "reference.safetensors"))
    back = st.load_file(os.path.join(d, "model.safetensors"))
    assert all(torch.equal(back[k], p[k]) for k in p)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.normpath(os.path.join(here, "..", "fixtures", "encoders")))
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    fixture("bert", bert_config(), args.out, 100)
    fixture("roberta", roberta_config(), args.out, 200)
    fixture("vit", vit_config(), args.out, 300, vit_preprocessor())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
