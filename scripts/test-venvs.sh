#!/usr/bin/env bash
# The "device" Python environments of the device tests, cached under .test-venvs/ (ignored):
#   .test-venvs/ort-migraphx: the real onnxruntime-migraphx wheel (no ROCm on this machine, so
#   a session asking for MIGraphX must be refused there, never fall back to the CPU silently).
# Idempotent: a stamp file records what was installed. `make test-venvs` and the test fixture run it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=.test-venvs/ort-migraphx
WANT="onnxruntime-migraphx==1.27.1 numpy"
if [ -f "$VENV/.installed" ] && [ "$(cat "$VENV/.installed")" = "$WANT" ]; then exit 0; fi
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q $WANT
echo "$WANT" > "$VENV/.installed"
