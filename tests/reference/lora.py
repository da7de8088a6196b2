"""PEFT-semantics LoRA / DoRA on top of models.py, and PEFT's adapter folder format.

Facts taken from PEFT (src/peft/tuners/lora/{config,layer,dora,model}.py, utils/save_and_load.py,
v0.14.0, checked against the current main):
  * lora_A.weight [r, in], lora_B.weight [out, r]; forward: result = base(x) + lora_B(lora_A(dropout(x))) * scaling
  * scaling = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora; r / alpha per module from
    rank_pattern / alpha_pattern: the first key k with re.match(rf"(.*\\.)?({k})$", module_path)
  * Conv1D (GPT-2) is fan_in_fan_out: in/out come from weight.shape = [in, out]; lora_A/B are still
    [r, in] / [out, r]; delta weight = transpose(B @ A) * scaling, i.e. [in, out]
  * DoRA: weight_norm = ||W_[out,in] + scaling * (B @ A).detach()||_2 over dim=1 (the input dim),
    one value per output feature, detached; mag_norm_scale = m / weight_norm;
    result = base(x) + (mag_norm_scale - 1) * (base(x) - bias) + mag_norm_scale * lora_B(lora_A(x)) * scaling
    merge: W' = (m / ||W + scaling*B@A||_row)[:, None] * (W + scaling*B@A)   (transposed back for Conv1D)
  * saved keys: "base_model.model." + module path + ".lora_A.weight" / ".lora_B.weight" /
    ".lora_magnitude_vector" (adapter name "default" and DoRA's ".weight" removed)
  * adapter_config.json: json.dumps(LoraConfig as dict, indent=2, sort_keys=True), sets written as lists,
    runtime_config dropped, inference_mode true on save_pretrained; no trailing newline.
"""
import json
import math
import re

import torch
import torch.nn.functional as F

PEFT_PREFIX = "base_model.model."


class LoraModule:
    def __init__(self, A, B, scaling, conv1d, magnitude=None):
        self.A = A  # [r, in]
        self.B = B  # [out, r]
        self.scaling = scaling
        self.conv1d = conv1d
        self.magnitude = magnitude  # [out] for DoRA

    def lora_weight(self):
        return self.B @ self.A  # [out, in]

    def __call__(self, x, result, W, b):
        lora_result = F.linear(F.linear(x, self.A), self.B)
        if self.magnitude is None:
            return result + lora_result * self.scaling
        W_oi = W.t() if self.conv1d else W
        weight_norm = torch.linalg.norm(W_oi + self.scaling * self.lora_weight().detach(), dim=1).detach()
        mag_norm_scale = (self.magnitude / weight_norm).view(1, -1)
        base_result = result - b if b is not None else result
        result_dora = (mag_norm_scale - 1) * base_result + mag_norm_scale * lora_result * self.scaling
        return result + result_dora

    def merged_weight(self, W):
        """W in checkpoint layout ([out, in], or [in, out] for Conv1D) -> merged W, same layout."""
        delta = self.scaling * self.lora_weight()  # [out, in]
        W_oi = W.t() if self.conv1d else W
        new = W_oi + delta
        if self.magnitude is not None:
            norm = torch.linalg.norm(new, dim=1)
            new = (self.magnitude / norm).view(-1, 1) * new
        return new.t().contiguous() if self.conv1d else new


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------
def peft_lora_config(base_model_name_or_path, r, lora_alpha, target_modules, fan_in_fan_out=False,
                     use_rslora=False, use_dora=False, rank_pattern=None, alpha_pattern=None,
                     lora_dropout=0.0, layers_to_transform=None, layers_pattern=None):
    """Every field PEFT 0.14's LoraConfig serialises, with PEFT's defaults."""
    return {
        "alpha_pattern": alpha_pattern or {},
        "auto_mapping": None,
        "base_model_name_or_path": base_model_name_or_path,
        "bias": "none",
        "eva_config": None,
        "exclude_modules": None,
        "fan_in_fan_out": fan_in_fan_out,
        "inference_mode": True,
        "init_lora_weights": True,
        "layer_replication": None,
        "layers_pattern": layers_pattern,
        "layers_to_transform": layers_to_transform,
        "loftq_config": {},
        "lora_alpha": lora_alpha,
        "lora_bias": False,
        "lora_dropout": lora_dropout,
        "megatron_config": None,
        "megatron_core": "megatron.core",
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": r,
        "rank_pattern": rank_pattern or {},
        "revision": None,
        "target_modules": sorted(target_modules) if isinstance(target_modules, (list, set)) else target_modules,
        "task_type": "CAUSAL_LM",
        "use_dora": use_dora,
        "use_rslora": use_rslora,
    }


def dump_peft_config(cfg):
    return json.dumps(cfg, indent=2, sort_keys=True)


def get_pattern_key(pattern_keys, key_to_match):
    for key in pattern_keys:
        if re.match(rf"(.*\.)?({key})$", key_to_match):
            return key
    return key_to_match


def _layer_index(path, layers_pattern):
    pats = layers_pattern if isinstance(layers_pattern, list) else ([layers_pattern] if layers_pattern else None)
    if pats is None:
        m = re.match(r".*\.[^.]*\.(\d+)\.", path)
        return int(m.group(1)) if m else None
    for pat in pats:
        m = re.match(rf".*\.{pat}\.(\d+)\.", path)
        if m:
            return int(m.group(1))
    return None


def is_target(cfg, path):
    """PEFT's check_target_module_exists for a plain target list / regex string."""
    tm = cfg["target_modules"]
    if isinstance(tm, str):
        ok = re.fullmatch(tm, path) is not None
    else:
        ok = path in tm or any(path.endswith("." + t) for t in tm)
    if ok and cfg.get("layers_to_transform") is not None:
        lt = cfg["layers_to_transform"]
        lt = [lt] if isinstance(lt, int) else lt
        idx = _layer_index(path, cfg.get("layers_pattern"))
        ok = idx is not None and idx in lt
    return ok


def module_rank_alpha(cfg, path):
    r_key = get_pattern_key(cfg.get("rank_pattern") or {}, path)
    a_key = get_pattern_key(cfg.get("alpha_pattern") or {}, path)
    r = (cfg.get("rank_pattern") or {}).get(r_key, cfg["r"])
    alpha = (cfg.get("alpha_pattern") or {}).get(a_key, cfg["lora_alpha"])
    scaling = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
    return r, alpha, scaling


def adapters_from_peft(model, cfg, state):
    """Build {module path: LoraModule} from an adapter_config dict and its safetensors dict."""
    adapters = {}
    for path, conv1d in model.linear_modules():
        if not is_target(cfg, path):
            continue
        r, _alpha, scaling = module_rank_alpha(cfg, path)
        key = PEFT_PREFIX + path
        A = state[key + ".lora_A.weight"].float()
        B = state[key + ".lora_B.weight"].float()
        assert A.shape[0] == r and B.shape[1] == r, (path, A.shape, B.shape, r)
        mag = None
        if cfg.get("use_dora"):
            mag = state[key + ".lora_magnitude_vector"].float()
        adapters[path] = LoraModule(A, B, scaling, conv1d, mag)
    used = set()
    for path in adapters:
        used |= {PEFT_PREFIX + path + s for s in (".lora_A.weight", ".lora_B.weight", ".lora_magnitude_vector")}
    extra = sorted(set(state) - used)
    if extra:
        raise ValueError(f"adapter tensors that match no targeted module: {extra[:5]}")
    return adapters


def peft_state_dict(adapters):
    out = {}
    for path, ad in adapters.items():
        out[PEFT_PREFIX + path + ".lora_A.weight"] = ad.A
        out[PEFT_PREFIX + path + ".lora_B.weight"] = ad.B
        if ad.magnitude is not None:
            out[PEFT_PREFIX + path + ".lora_magnitude_vector"] = ad.magnitude
    return out
