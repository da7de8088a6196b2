#!/usr/bin/env python3
"""An independent oracle for training steps: torch.optim.AdamW with weight decay, gradient
clipping (torch.nn.utils.clip_grad_norm_) and a warmup + cosine schedule (as Hugging Face's
get_cosine_schedule_with_warmup), on a plain LoRA and a DoRA adapter of a biased Linear.

    /usr/bin/python3 tests/reference/adamw.py    # writes tests/fixtures/adamw/steps.json

Layer: W [6, 5] and bias [6]; adapter r 2, alpha 4 (scaling 2), A [2, 5], B [6, 2] (B non-zero
so every factor has a gradient from the first step); DoRA: magnitude [6] = the row norms of
W + s·B·A (PEFT's init), the weight norm detached in forward (lora.py's LoraModule). Loss: the
mean of (y − target)² over a [4, 6] batch. Parameter groups as lorakit's createOptimizer makes
them: A, B with weight decay 0.1, the 1-D magnitude without. lr 0.05 peak, 2 warmup steps,
cosine to 0 over 8 steps, clipping at global norm 0.5 (norms above it in most steps).
Recorded per step: the loss and the gradient norm before clipping; at the end every parameter.
"""
import json
import math
import os
import sys

import torch

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from lora import LoraModule  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "adamw", "steps.json")
STEPS, WARMUP, LR, WD, CLIP = 8, 2, 0.05, 0.1, 0.5
O, I, R, ALPHA, N = 6, 5, 2, 4.0, 4


def factor(step):
    if step < WARMUP:
        return step / WARMUP
    progress = min(1.0, (step - WARMUP) / max(1, STEPS - WARMUP))
    return 0.5 * (1 + math.cos(math.pi * progress))


def run(dora):
    g = torch.Generator().manual_seed(25)
    W = torch.randn(O, I, generator=g) * 0.5
    b = torch.randn(O, generator=g) * 0.1
    x = torch.randn(N, I, generator=g)
    target = torch.randn(N, O, generator=g)
    A = (torch.randn(R, I, generator=g) * 0.3).requires_grad_()
    B = (torch.randn(O, R, generator=g) * 0.3).requires_grad_()
    s = ALPHA / R
    init = {"W": W.flatten().tolist(), "bias": b.tolist(), "x": x.flatten().tolist(), "target": target.flatten().tolist(), "A": A.detach().flatten().tolist(), "B": B.detach().flatten().tolist()}
    params = [A, B]
    groups = [{"params": [A, B], "weight_decay": WD}]
    m = None
    if dora:
        m = torch.linalg.norm(W + s * (B @ A).detach(), dim=1).detach().clone().requires_grad_()
        init["magnitude"] = m.detach().tolist()
        params.append(m)
        groups.append({"params": [m], "weight_decay": 0.0})
    mod = LoraModule(A, B, s, False, m)
    opt = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.999), eps=1e-8)
    steps = []
    for step in range(STEPS):
        for grp in opt.param_groups:
            grp["lr"] = LR * factor(step)
        opt.zero_grad()
        base = x @ W.t() + b
        y = mod(x, base, W, b)
        loss = ((y - target) ** 2).mean()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        steps.append({"loss": loss.item(), "grad_norm": norm.item(), "lr": LR * factor(step)})
    final = {"A": A.detach().flatten().tolist(), "B": B.detach().flatten().tolist()}
    if m is not None:
        final["magnitude"] = m.detach().tolist()
    return {"dora": dora, "init": init, "steps": steps, "final": final}


cases = [run(False), run(True)]
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump({"generator": "tests/reference/adamw.py", "torch": torch.__version__, "O": O, "I": I, "r": R, "alpha": ALPHA, "N": N,
               "steps": STEPS, "warmup": WARMUP, "lr": LR, "weight_decay": WD, "max_grad_norm": CLIP, "cases": cases}, f)
    f.write("\n")
print(f"wrote {OUT}")
