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
want=$(cat requirements.txt requirements-dev.txt pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  # the core library as an editable package: `musedance_core` imports from anywhere and the
  # `musedance` command exists (dependencies are already in from the line above)
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi
# Debian packages (as root they are installed here, after an apt-get update; otherwise a note says
# what to install):
# - FluidSynth + the small TimGM6mb General-MIDI soundfont: the beat tracker's data generator and
#   the tests of it render MIDI with them.
# - Chromium: the frontend tests (tests/test_comfy_frontend.py) and scripts/screenshot_workflow.py
#   drive the real ComfyUI frontend in it through Playwright, which uses this /usr/bin/chromium
#   (no `playwright install` download). On Ubuntu the `chromium` package is a snap stub; point the
#   CHROMIUM environment variable at a real Chromium binary there.
apt_packages=()
if ! command -v fluidsynth >/dev/null || [ ! -f /usr/share/sounds/sf2/TimGM6mb.sf2 ]; then
  apt_packages+=(fluidsynth timgm6mb-soundfont)
fi
if [ -z "${CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  apt_packages+=(chromium)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${apt_packages[*]}"
    if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
          "${apt_packages[@]}") >/tmp/musedance-apt.log 2>&1; then
      tail -20 /tmp/musedance-apt.log >&2
      echo "error: apt-get install ${apt_packages[*]} failed (log above, full log in /tmp/musedance-apt.log)" >&2
      exit 1
    fi
  else
    echo "note: not root (or no apt-get), so these Debian packages are not installed: ${apt_packages[*]}." >&2
    echo "      FluidSynth and its soundfont are needed by the beat-tracker data tests, Chromium by the" >&2
    echo "      frontend tests and scripts/screenshot_workflow.py (they skip without it, fail with CI=true):" >&2
    echo "      sudo apt-get install ${apt_packages[*]}" >&2
  fi
fi
.venv/bin/python -m scripts.comfyui_host install  # the real ComfyUI 0.3.75 the integration tests run (.cache/comfyui; idempotent, ~30 s once)
