"""Writes the dequantization fixtures of WeightMatrixQuantsTest: per type, 2 rows x 512 columns of seeded random
blocks (<TYPE>.bin, the raw GGUF bytes) and ggml's dequantization of them by the independent `gguf` Python package
(<TYPE>.npy, float32 [2, 512]). Run once: python3 generate.py (gguf 0.19.0, numpy 2.2.6)."""
import numpy as np
from gguf import quants, GGMLQuantizationType as T

ROWS, COLS = 2, 512
# type: (block elements, block bytes, byte offsets of its float16 scale fields)
TYPES = {
    "Q4_0": (32, 18, [0]), "Q4_1": (32, 20, [0, 2]), "Q5_0": (32, 22, [0]), "Q5_1": (32, 24, [0, 2]),
    "Q8_0": (32, 34, [0]), "Q4_K": (256, 144, [0, 2]), "Q5_K": (256, 176, [0, 2]), "Q6_K": (256, 210, [208]),
}
rng = np.random.default_rng(20261202)
for name, (elements, size, halves) in TYPES.items():
    blocks = ROWS * COLS // elements
    raw = rng.integers(0, 256, size=(blocks, size), dtype=np.uint8)
    for off in halves:
        raw[:, off:off + 2] = rng.uniform(-1, 1, size=blocks).astype(np.float16).view(np.uint8).reshape(blocks, 2)
    data = raw.reshape(ROWS, -1)
    expected = quants.dequantize(data, getattr(T, name)).astype(np.float32).reshape(ROWS, COLS)
    raw.tofile(f"{name}.bin")
    np.save(f"{name}.npy", expected)
    print(name, blocks, "blocks", float(np.abs(expected).max()))
