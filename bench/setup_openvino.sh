#!/usr/bin/env bash
# Create bench/.venv-openvino with Intel's OpenVINO runtime (PyPI `openvino`), so bench/ can time it
# beside our engine on the same ONNX file (superres.models.export). Never installed into the project's
# own environment: OpenVINO is a peer to measure against, not a dependency.
#
#   bash bench/setup_openvino.sh            # idempotent; prints the installed version
#   OPENVINO_VERSION=2026.4.1 OPENVINO_VENV=/tmp/ov bash bench/setup_openvino.sh
#
# The venv holds no torch at all (openvino needs only numpy, packaging and openvino-telemetry), so
# nothing here can touch the project's torch; bench/openvino_peer.py imports only numpy and Pillow.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
venv="${OPENVINO_VENV:-$here/.venv-openvino}"
version="${OPENVINO_VERSION:-2026.4.1}"
py="$venv/bin/python"

if [[ ! -x "$py" ]]; then
    python3 -m venv "$venv"
fi
"$py" -m pip install -q "openvino==$version" numpy pillow

"$py" - <<'PY'
import importlib.metadata as md
import sys

import openvino

versions = {name: md.version(name) for name in ("openvino", "numpy", "pillow")}
print(" ".join(f"{k}={v}" for k, v in versions.items()))
if any(d.metadata["Name"].lower() == "torch" for d in md.distributions()):
    sys.exit("the OpenVINO venv has torch in it; it must not")
print("devices:", openvino.Core().available_devices)
PY
echo "OpenVINO venv ready: $venv"
