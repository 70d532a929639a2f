#!/usr/bin/env python3
"""Quantize a whisper.cpp ggml model (legacy layout, f16 matrices) to q8_0.

Usage: ggml_quantize.py IN_FILE OUT_FILE

Does what whisper.cpp's `quantize` tool does for q8_0, with numpy only (that tool is not part
of the whisper-rs build): every 2-D f16 matrix (attention, MLP, token embedding) becomes q8_0,
in blocks of 32 values, each an f16 scale and 32 int8s; layer norms, biases, positional
embeddings (f32) and the conv kernels (3-D f16) stay as they are, which is what whisper.cpp's
loader expects of a "mostly q8_0" file (hparam ftype 7, plus the quantization version x 1000).
Rounding follows ggml's reference `quantize_row_q8_0_ref`, so the output is reproducible.
"""

import struct
import sys
from pathlib import Path

import numpy as np

GGML_MAGIC = 0x67676D6C
GGML_QNT_VERSION = 2
GGML_QNT_VERSION_FACTOR = 1000
FTYPE_F32, FTYPE_F16, FTYPE_MOSTLY_Q8_0 = 0, 1, 7
TYPE_Q8_0 = 8
QK8_0 = 32


def quantize_q8_0(matrix: np.ndarray) -> bytes:
    """ggml's q8_0: per block of 32, d = amax / 127, q = roundf(x / d)."""
    x = matrix.astype(np.float32).reshape(-1, QK8_0)
    amax = np.abs(x).max(axis=1)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    scaled = (x * inv[:, None]).astype(np.float32)
    # C's roundf: half away from zero (numpy's round is half to even).
    q = (np.sign(scaled) * np.floor(np.abs(scaled).astype(np.float64) + 0.5)).astype(np.int8)
    blocks = np.empty(x.shape[0], dtype=[("d", "<f2"), ("qs", "i1", QK8_0)])
    blocks["d"] = d.astype(np.float16)
    blocks["qs"] = q
    return blocks.tobytes()


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("model file is truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def ints(self, count: int):
        return struct.unpack(f"<{count}i", self.take(4 * count))

    def done(self) -> bool:
        return self.pos >= len(self.data)


def quantize(in_file: Path, out_file: Path) -> int:
    r = Reader(in_file.read_bytes())
    (magic,) = r.ints(1)
    if magic != GGML_MAGIC:
        raise ValueError(f"{in_file}: not a ggml model (magic {magic:#x})")
    hparams = list(r.ints(11))
    if hparams[10] != FTYPE_F16:
        raise ValueError(f"{in_file}: expected an f16 model, ftype is {hparams[10]}")
    hparams[10] = FTYPE_MOSTLY_Q8_0 + GGML_QNT_VERSION * GGML_QNT_VERSION_FACTOR

    n_mel, n_fft = r.ints(2)
    filters = r.take(4 * n_mel * n_fft)
    (n_tokens,) = r.ints(1)
    tokens = []
    for _ in range(n_tokens):
        (length,) = r.ints(1)
        tokens.append(r.take(length))

    quantized = 0
    tmp = out_file.with_suffix(out_file.suffix + ".tmp")
    with tmp.open("wb") as out:
        out.write(struct.pack("<i", GGML_MAGIC))
        out.write(struct.pack("<11i", *hparams))
        out.write(struct.pack("<ii", n_mel, n_fft))
        out.write(filters)
        out.write(struct.pack("<i", n_tokens))
        for token in tokens:
            out.write(struct.pack("<i", len(token)))
            out.write(token)
        while not r.done():
            n_dims, name_len, ftype = r.ints(3)
            dims = r.ints(n_dims)
            name = r.take(name_len)
            count = int(np.prod(dims))
            if ftype == FTYPE_F32:
                data = r.take(4 * count)
            elif ftype == FTYPE_F16:
                data = r.take(2 * count)
            else:
                raise ValueError(f"{name.decode()}: unexpected tensor type {ftype}")
            if ftype == FTYPE_F16 and n_dims == 2:
                if dims[0] % QK8_0:
                    raise ValueError(f"{name.decode()}: row of {dims[0]} is not a multiple of 32")
                data = quantize_q8_0(np.frombuffer(data, dtype="<f2"))
                ftype = TYPE_Q8_0
                quantized += 1
            out.write(struct.pack("<iii", n_dims, name_len, ftype))
            out.write(struct.pack(f"<{n_dims}i", *dims))
            out.write(name)
            out.write(data)
    tmp.replace(out_file)
    return quantized


def main(argv) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        count = quantize(Path(argv[1]), Path(argv[2]))
    except (OSError, ValueError) as err:
        print(f"ggml_quantize: {err}", file=sys.stderr)
        return 1
    print(f"wrote {argv[2]}: {count} matrices as q8_0")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
