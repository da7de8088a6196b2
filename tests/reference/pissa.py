#!/usr/bin/env python3
"""PiSSA's oracle: the top-r part of a weight by torch.linalg.svd, as PEFT's pissa_init takes it.

    /usr/bin/python3 tests/reference/pissa.py    # writes tests/fixtures/pissa/svd.json

W [out, in] (seeded normal, float32), r, and in float64: s·B·A = U_r·diag(S_r)·Vh_r (the best
rank-r approximation; PEFT's A = diag(√(S_r/s))·Vh_r, B = U_r·diag(√(S_r/s))) and the residual
W − s·B·A. tests/unit/lora-linear.test.ts compares lorakit's PiSSA with it; the product and the
residual do not depend on the signs of the singular vectors, so they pin the directions.
"""
import json
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "pissa", "svd.json")

torch.manual_seed(25)
cases = []
for out_f, in_f, r in [(8, 10, 3), (12, 6, 2)]:
    W = torch.randn(out_f, in_f, dtype=torch.float32)
    U, S, Vh = torch.linalg.svd(W.double(), full_matrices=False)
    top = U[:, :r] @ torch.diag(S[:r]) @ Vh[:r]
    cases.append({
        "out": out_f, "in": in_f, "r": r,
        "W": W.flatten().tolist(),
        "S": S.tolist(),
        "sBA": top.flatten().tolist(),
        "residual": (W.double() - top).flatten().tolist(),
    })
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump({"generator": "tests/reference/pissa.py", "torch": torch.__version__, "cases": cases}, f)
    f.write("\n")
print(f"wrote {OUT}")
