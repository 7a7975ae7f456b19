#!/usr/bin/env bash
# Virtual environments of the peers a user would pick instead of edgeport, one each, so their
# pins never touch edgeport's: optimum-intel (OpenVINO + NNCF) and optimum-onnx (ONNX Runtime).
# torch is pinned to the CPU build in each. Measured here: optimum-intel pulls torchvision,
# whose PyPI build fails to import beside the CPU torch, so it is removed; optimum-onnx needs
# transformers < 4.58. Idempotent.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venvs="$root/.bench-venvs"
mkdir -p "$venvs"
make_env() {  # name, packages...
  local name=$1; shift
  local env="$venvs/$name"
  [ -f "$env/.ready" ] && return 0
  python3 -m venv "$env"
  "$env/bin/pip" install -q --upgrade pip
  "$env/bin/pip" install -q -c "$root/constraints.txt" torch==2.13.0
  "$env/bin/pip" install -q -c "$root/constraints.txt" "$@"
  touch "$env/.ready"
}
make_env optimum-intel "optimum-intel[openvino]" nncf
"$venvs/optimum-intel/bin/pip" uninstall -q -y torchvision 2>/dev/null || true
make_env optimum-onnx "optimum-onnx[onnxruntime]" "transformers<4.58"
echo "peer environments ready in $venvs" >&2
