# The oracle values in test/gguf-formats.test.ts: one block of random bytes per ggml type (fp16
# scale fields kept finite) and the sha256 of what llama.cpp's gguf-py decodes it to.
#   python3 -m venv /tmp/ggpy && /tmp/ggpy/bin/pip install gguf numpy && /tmp/ggpy/bin/python kquant-oracle.py
import hashlib
import numpy as np
import gguf.quants as q
from gguf.constants import GGMLQuantizationType as T

rng = np.random.default_rng(7)
HALFS = {'Q4_0': [0], 'Q4_1': [0, 2], 'Q5_0': [0], 'Q5_1': [0, 2], 'Q8_0': [0], 'Q4_K': [0, 2], 'Q5_K': [0, 2], 'Q6_K': [208]}
for name, halfs in HALFS.items():
    t = getattr(T, name)
    _, size = q.GGML_QUANT_SIZES[t]
    raw = rng.integers(0, 256, size=(64, size), dtype=np.uint8)
    for o in halfs:
        raw[:, o + 1] &= 0x3B
    vals = q.dequantize(raw.reshape(-1), t).astype('<f4').reshape(-1)
    n = 256 if name.endswith('_K') else 32
    print(f"  {name}: ['{raw[0].tobytes().hex()}', '{hashlib.sha256(vals[:n].tobytes()).hexdigest()}'],")
