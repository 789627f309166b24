#!/usr/bin/env bash
# Create bench/.venv-peer with Real-ESRGAN's own code (PyPI realesrgan 0.3.0 + basicsr 1.4.2)
# on the same CPU torch as ours, so bench/ can time RealESRGANer beside our engine.
#
#   bash bench/setup_peer.sh          # idempotent; prints the installed versions
#   PEER_VENV=/tmp/peer bash bench/setup_peer.sh
#
# Facts this works around (issue 6):
# - torch must be the local CPU 2.13.0 build; `pip install torch==2.13.0` picks it (2.13.0+cpu sorts
#   above the CUDA 2.13.0 on PyPI), and the constraint file keeps every later step from replacing it.
# - torchvision 0.28.0 is the only release pinning torch==2.13.0. It is a CUDA build; it is installed
#   with --no-deps so nothing can drag CUDA wheels in, then its pure deps (numpy, pillow) alone.
# - basicsr 1.4.2 is source-only and its setup.py imports torch: --no-build-isolation.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
venv="${PEER_VENV:-$here/.venv-peer}"
constraints="$here/peer-constraints.txt"
py="$venv/bin/python"

if [[ ! -x "$py" ]]; then
    python3 -m venv "$venv"
fi
pip_install() { "$py" -m pip install -q -c "$constraints" "$@"; }

pip_install torch==2.13.0
pip_install --no-deps torchvision==0.28.0
pip_install numpy pillow setuptools wheel
pip_install --no-build-isolation basicsr==1.4.2
pip_install realesrgan==0.3.0

"$py" - <<'PY'
import importlib.metadata as md
import sys

versions = {name: md.version(name) for name in ("torch", "torchvision", "basicsr", "realesrgan", "numpy", "opencv-python")}
print(" ".join(f"{k}={v}" for k, v in versions.items()))
if not versions["torch"].endswith("+cpu"):
    sys.exit(f"peer venv has torch {versions['torch']}, expected the local CPU build 2.13.0+cpu")
cuda = sorted(d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].lower().startswith("nvidia"))
if cuda:
    sys.exit(f"peer venv pulled CUDA packages: {', '.join(cuda)}")
PY
echo "peer venv ready: $venv"
