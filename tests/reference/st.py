"""Minimal safetensors writer and reader (no `safetensors` package needed).

File layout (https://github.com/huggingface/safetensors):
  8 bytes   little-endian u64 N = length of the JSON header
  N bytes   UTF-8 JSON header: {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}}
            padded with spaces so that the data section starts at a multiple of 8
  rest      the raw little-endian tensor bytes, row-major; offsets are relative to the data section

This writer emits the header with sorted keys and compact separators, and lays the tensors out
in sorted-name order, so the bytes are a pure function of the tensors (deterministic re-runs).
"""
import json
import struct

import numpy as np
import torch

_TORCH_TO_ST = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_ST_TO_NP = {
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.int16,  # raw bits; reinterpreted as bfloat16 by torch below
    "I64": np.int64,
    "I32": np.int32,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    arr = t.numpy()
    return arr.astype(arr.dtype.newbyteorder("<")).tobytes()


def save_file(tensors: dict, path: str, metadata: dict | None = None) -> None:
    header = {}
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in _TORCH_TO_ST:
            raise ValueError(f"unsupported dtype {t.dtype} for {name}")
        b = _tensor_bytes(t)
        header[name] = {
            "dtype": _TORCH_TO_ST[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(b)],
        }
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_file(path: str, with_metadata: bool = False):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dt = info["dtype"]
        arr = np.frombuffer(data[base + begin : base + end], dtype=np.dtype(_ST_TO_NP[dt]).newbyteorder("<"))
        t = torch.from_numpy(arr.astype(_ST_TO_NP[dt]).copy()).reshape(info["shape"])
        if dt == "BF16":
            t = t.view(torch.bfloat16)
        out[name] = t
    if with_metadata:
        return out, meta
    return out
