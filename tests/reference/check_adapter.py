#!/usr/bin/env python3
"""Load a PEFT LoRA/DoRA adapter folder (e.g. one written by lorakit) onto its base model, the way
PEFT would, and compare its logits with a reference.

    /usr/bin/python3 tests/reference/check_adapter.py ADAPTER_DIR [--base MODEL_DIR]
        [--reference REF.safetensors] [--inputs REF.json] [--tol 1e-4] [--dump OUT.safetensors]

ADAPTER_DIR   folder with adapter_config.json + adapter_model.safetensors
--base        base model folder; default: adapter_config.json's base_model_name_or_path, resolved
              against the current directory, then the repository root
--reference   safetensors holding `logits` [B, T, V] to compare with (padded positions ignored);
              default: ADAPTER_DIR/reference.safetensors if present, else the fixture adapter with the
              same folder name under tests/fixtures/adapters/
--inputs      JSON with input_ids / attention_mask / position_ids / labels; default: the reference.json
              beside the reference, else tests/fixtures/models/<base>/reference.json
--dump        also write the computed logits (and loss) to this safetensors file

Prints the max abs logit difference over real (attention_mask == 1) positions and exits 1 when it
is above --tol. Also warns about adapter_config.json keys that PEFT 0.14 would not accept.
"""
import argparse
import json
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))

import torch  # noqa: E402

import lora as L  # noqa: E402
import models as M  # noqa: E402
import st  # noqa: E402

PEFT_014_LORA_FIELDS = {
    "alpha_pattern", "auto_mapping", "base_model_name_or_path", "bias", "eva_config", "exclude_modules",
    "fan_in_fan_out", "inference_mode", "init_lora_weights", "layer_replication", "layers_pattern",
    "layers_to_transform", "loftq_config", "lora_alpha", "lora_bias", "lora_dropout", "megatron_config",
    "megatron_core", "modules_to_save", "peft_type", "r", "rank_pattern", "revision", "target_modules",
    "task_type", "use_dora", "use_rslora",
}


def resolve(path):
    for cand in (path, os.path.join(REPO, path)):
        if cand and os.path.isdir(cand):
            return cand
    raise SystemExit(f"cannot find folder {path!r} (cwd or repo root)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("adapter")
    ap.add_argument("--base")
    ap.add_argument("--reference")
    ap.add_argument("--inputs")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--dump")
    args = ap.parse_args()
    torch.set_num_threads(1)

    with open(os.path.join(args.adapter, "adapter_config.json")) as f:
        cfg = json.load(f)
    unknown = sorted(set(cfg) - PEFT_014_LORA_FIELDS)
    if unknown:
        print(f"warning: keys PEFT 0.14 does not know (older PEFT raises on them): {unknown}")
    missing = sorted({"peft_type", "r", "lora_alpha", "target_modules"} - set(cfg))
    if missing:
        raise SystemExit(f"adapter_config.json lacks {missing}")
    if cfg["peft_type"] != "LORA":
        raise SystemExit(f"peft_type {cfg['peft_type']!r} is not LORA")
    if cfg.get("bias", "none") != "none" or cfg.get("modules_to_save") or cfg.get("lora_bias"):
        raise SystemExit("bias / modules_to_save / lora_bias adapters are not supported by this checker")

    base_dir = resolve(args.base or cfg.get("base_model_name_or_path") or "")
    model = M.load_model_folder(base_dir)
    state = st.load_file(os.path.join(args.adapter, "adapter_model.safetensors"))
    adapters = L.adapters_from_peft(model, cfg, state)
    print(f"base {base_dir}: {model.config['model_type']}; adapter {args.adapter}: {len(adapters)} modules, "
          f"{len(state)} tensors, use_dora={bool(cfg.get('use_dora'))}, use_rslora={bool(cfg.get('use_rslora'))}")

    ref_path = args.reference
    if ref_path is None:
        cand = [os.path.join(args.adapter, "reference.safetensors"),
                os.path.join(REPO, "tests", "fixtures", "adapters", os.path.basename(os.path.normpath(args.adapter)),
                             "reference.safetensors")]
        ref_path = next((c for c in cand if os.path.exists(c)), None)
    inputs_path = args.inputs
    if inputs_path is None:
        cand = []
        if ref_path:
            cand.append(os.path.join(os.path.dirname(ref_path), "reference.json"))
        cand.append(os.path.join(base_dir, "reference.json"))
        cand.append(os.path.join(REPO, "tests", "fixtures", "models", model.name, "reference.json"))
        inputs_path = next((c for c in cand if os.path.exists(c)), None)
    if inputs_path is None:
        raise SystemExit("no inputs: pass --inputs REF.json (input_ids, attention_mask)")
    with open(inputs_path) as f:
        inp = json.load(f)
    ids = torch.tensor(inp["input_ids"], dtype=torch.long)
    mask = torch.tensor(inp["attention_mask"], dtype=torch.long)
    pos = torch.tensor(inp["position_ids"], dtype=torch.long) if "position_ids" in inp else M.hf_position_ids(mask)

    p = model.compute_params()
    with torch.no_grad():
        logits = model.forward(p, input_ids=ids, position_ids=pos, key_mask=mask, adapters=adapters)
        base_logits = model.forward(p, input_ids=ids, position_ids=pos, key_mask=mask)
        loss = None
        if "labels" in inp:
            loss = float(M.causal_lm_loss(logits, torch.tensor(inp["labels"], dtype=torch.long)))
    real = mask.bool()
    print(f"inputs {inputs_path}; loss with adapter: {loss}")
    print(f"adapter vs base model: max abs logit change {float((logits - base_logits)[real].abs().max()):.6g}")
    if args.dump:
        out = {"logits": (logits * mask[..., None]).contiguous()}
        if loss is not None:
            out["loss"] = torch.tensor([loss], dtype=torch.float32)
        st.save_file(out, args.dump)
        print(f"wrote {args.dump}")
    if ref_path is None:
        print("no reference logits found (pass --reference); nothing to compare")
        return 0
    ref = st.load_file(ref_path)["logits"].float()
    if ref.shape != logits.shape:
        raise SystemExit(f"reference logits shape {tuple(ref.shape)} != computed {tuple(logits.shape)}")
    diff = float((logits - ref)[real].abs().max())
    verdict = "OK" if diff <= args.tol else "FAIL"
    print(f"logits max abs diff vs {ref_path}: {diff:.6g} (tol {args.tol:g}) {verdict}")
    return 0 if diff <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
