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
# FluidSynth + the small TimGM6mb General-MIDI soundfont: the beat tracker's data generator and
# the tests of it render MIDI with them (Debian packages; as root they are installed here).
if ! command -v fluidsynth >/dev/null || [ ! -f /usr/share/sounds/sf2/TimGM6mb.sf2 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fluidsynth timgm6mb-soundfont) >/dev/null
  else
    echo "note: the beat-tracker data tests need FluidSynth: sudo apt-get install fluidsynth timgm6mb-soundfont" >&2
  fi
fi
.venv/bin/python scripts/comfyui_host.py install  # the real ComfyUI 0.3.75 the integration tests run (.cache/comfyui; idempotent, ~30 s once)
