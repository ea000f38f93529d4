#!/usr/bin/env bash
# Creates ./.venv and installs everything MuseDance needs to run its CLI and its tests.
# Safe to re-run: it only installs what is missing. Needs Python 3.10+ and pip; no GPU.
#   bash scripts/setup.sh          # runtime + test dependencies
# Override the interpreter with PYTHON=python3.12 bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.musedance-installed
want=$(cat requirements.txt requirements-dev.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
fi
.venv/bin/python scripts/comfyui_host.py install  # the real ComfyUI 0.3.75 the integration tests run (.cache/comfyui; idempotent, ~30 s once)
