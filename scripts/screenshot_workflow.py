"""Screenshot example workflows in the real ComfyUI frontend (headless Chromium, offline).

Starts ComfyUI with this pack (``tests/comfy_host.ComfyHost``, a fresh server: the pack lists its
demo model and copies its demo picture and song into the empty input folder, as on a user's
install), opens the frontend with the driver of the frontend tests (``tests/frontend.Frontend``),
loads each UI-format workflow with ``app.loadGraphData``, fits it to the view and saves the
picture. It also checks that the frontend reports no missing node types (the "missing nodes"
dialog) and prints console errors.

    python -m scripts.screenshot_workflow --workflow example_workflows/musedance_dance.json \\
        --out docs/musedance_dance.png [--width 1600 --height 900] [--resize 640x360] [--focus]

``--workflow``/``--out`` may be repeated (pairs, one server start); ``--out`` may end in .png or
.jpg. ``--all`` writes ``docs/<name>.png`` (full UI) and ``example_workflows/<name>.jpg`` (the
640x360 Templates-menu thumbnail ComfyUI serves for a pack's workflow, focus mode) for every
``example_workflows/*.json``. Exit code 1 if a workflow has missing nodes.

Needs: Debian ``chromium`` (``apt-get install chromium``) and ``pip install playwright``
(no ``playwright install``: the system Chromium is used); ``bash scripts/setup.sh`` installs both.
Chromium can only reach 127.0.0.1: other hosts fail to resolve and every non-loopback request is
aborted.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

from tests.comfy_host import ComfyHost, comfy_path
from tests.frontend import Frontend, frontend_missing

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "example_workflows"
THUMBNAIL = (640, 360)  # the Templates menu's thumbnail size
MAX_BYTES = 300_000  # a PNG above this is quantized to a palette
JPEG_QUALITY = 88


def save_image(data: bytes, out: Path, resize: tuple[int, int] | None) -> None:
    """Write a PNG screenshot as ``out`` (.png, or .jpg/.jpeg), optionally downscaled; a PNG above
    MAX_BYTES is quantized to a palette."""
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB")
    if resize:
        img = img.resize(resize, Image.LANCZOS)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in (".jpg", ".jpeg"):
        img.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
        return
    img.save(out, optimize=True)
    if out.stat().st_size > MAX_BYTES:
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)


def parse_size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflow", action="append", default=[], help="UI-format workflow JSON (repeatable)")
    parser.add_argument("--out", action="append", default=[], help="picture to write (.png or .jpg), one per --workflow")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--resize", type=parse_size, help="downscale the picture to WxH, e.g. 640x360")
    parser.add_argument("--focus", action="store_true", help="hide the frontend's menus and panels (focus mode)")
    parser.add_argument("--layout", action="store_true", help="print each node's pos, size and minimum size")
    parser.add_argument("--all", action="store_true",
                        help="every example_workflows/*.json to docs/<name>.png and a 640x360 "
                             "example_workflows/<name>.jpg thumbnail")
    args = parser.parse_args()

    jobs: list[tuple[Path, Path, tuple[int, int] | None, bool]] = []
    if args.all:
        for wf in sorted(EXAMPLES.glob("*.json")):
            jobs.append((wf, ROOT / "docs" / f"{wf.stem}.png", args.resize, args.focus))
            jobs.append((wf, wf.with_suffix(".jpg"), THUMBNAIL, True))
    if len(args.workflow) != len(args.out):
        parser.error("give one --out per --workflow")
    jobs += [(Path(w), Path(o), args.resize, args.focus) for w, o in zip(args.workflow, args.out)]
    if not jobs:
        parser.error("nothing to do: give --workflow/--out or --all")

    reason = frontend_missing()
    if reason:
        parser.error(reason)
    started = time.monotonic()
    failed = False
    with tempfile.TemporaryDirectory(prefix="musedance-shot-") as tmp, ComfyHost(comfy_path(), Path(tmp) / "host") as host:
        print(f"ComfyUI up at {host.url} after {host.startup_seconds:.1f} s")
        with Frontend(host, args.width, args.height, Path(tmp) / "chromium-profile") as frontend:
            if frontend.console:
                print(f"console errors while the frontend started: {frontend.console}")
            for wf_path, out, resize, focus in jobs:
                report = frontend.load(json.loads(wf_path.read_text()), wf_path.stem, settle_ms=1500)
                save_image(frontend.screenshot(focus), out, resize)
                failed |= bool(report.missing_nodes)
                print(f"{wf_path.name} -> {out} ({out.stat().st_size // 1024} KB): {report.nodes} nodes, "
                      f"missing nodes: {report.missing_nodes or 'none'}, "
                      f"missing models: {report.missing_models or 'none'}, dialogs: {report.dialogs or 'none'}, "
                      f"console errors: {report.console or 'none'}")
                if args.layout:
                    for node_id, kind, pos, size, minimum in frontend.layout():
                        print(f"  {node_id:>3} {kind:<24} pos={pos} size={size} min={[round(v) for v in minimum]}")
            if frontend.blocked:
                print(f"blocked off-host requests: {sorted(set(frontend.blocked))}")
    print(f"done in {time.monotonic() - started:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
