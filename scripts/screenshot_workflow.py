"""Screenshot example workflows in the real ComfyUI frontend (headless Chromium, offline).

Starts ComfyUI with this pack (``tests/comfy_host.ComfyHost``; a tiny random MuseDance bundle
in its models/musedance, the demo song and a drawn dancer in its input folder), opens the
frontend in headless Chromium through Playwright, loads each UI-format workflow with
``app.loadGraphData``, fits it to the view and saves a PNG. It also checks that the frontend
reports no missing node types (the "missing nodes" dialog) and prints console errors.

    python scripts/screenshot_workflow.py --workflow workflows/musedance_dance.json \\
        --out docs/musedance_dance.png [--width 1600 --height 900] [--resize 640x360] [--focus]

``--workflow``/``--out`` may be repeated (pairs, one server start). ``--all`` writes
``docs/<name>.png`` (full UI) and ``workflows/<name>.png`` (640x360 Templates-menu thumbnail,
focus mode) for every ``workflows/*.json``. Exit code 1 if a workflow has missing nodes.

Needs: Debian ``chromium`` (``apt-get install chromium``) and ``pip install playwright``
(no ``playwright install``: the system Chromium is used). Chromium can only reach 127.0.0.1:
other hosts fail to resolve and every non-loopback request is aborted.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.comfy_host import ComfyHost, comfy_path

BUNDLE = "musedance-demo-tiny.safetensors"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--metrics-recording-only",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
SETTINGS = {  # first-run popups and overlays off; the missing-nodes warning stays ON (it is checked)
    "Comfy.TutorialCompleted": True,
    "Comfy.Minimap.Visible": False,
    "Comfy.Notification.ShowVersionUpdates": False,
    "Comfy.Workflow.ShowMissingNodesWarning": True,
    "Comfy.Workflow.ShowMissingModelsWarning": True,
    "Comfy.Graph.CanvasInfo": False,  # the fps/node-count overlay
    "LiteGraph.Canvas.MinFontSizeForLOD": 0,  # always draw titles and widgets, even zoomed out
}
MAX_BYTES = 300_000


def prepare_host(host: ComfyHost) -> None:
    """A tiny random bundle for the loader's list; the song and a dancer picture as inputs."""
    import torch

    from musedance_core.checkpoints.bundle import save_bundle
    from musedance_core.models.config import tiny_config
    from musedance_core.models.musedance import MuseDanceModel

    models = host.models_dir / "musedance"
    models.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_bundle(MuseDanceModel(tiny_config()), models / BUNDLE)
    host.input_dir.mkdir(parents=True, exist_ok=True)
    (host.input_dir / "musedance_groove.mp3").write_bytes((ROOT / "assets/demo/groove.mp3").read_bytes())
    dancer_image().save(host.input_dir / "musedance_dancer.png")


def dancer_image(size: int = 384):
    """A stick-figure dancer on a gradient (a stand-in for a real photo)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(img)
    for y in range(size):
        t = y / size
        draw.line([(0, y), (size, y)], fill=(int(40 + 120 * t), int(30 + 40 * t), int(110 - 40 * t)))
    s = size / 384
    p = lambda x, y: (x * s, y * s)
    ink, w = (255, 220, 120), max(2, int(10 * s))
    draw.ellipse([*p(170, 60), *p(214, 104)], outline=ink, width=w)
    for a, b in [((192, 104), (192, 220)), ((192, 130), (130, 80)), ((192, 130), (262, 160)),
                 ((262, 160), (300, 110)), ((192, 220), (140, 300)), ((140, 300), (110, 340)),
                 ((192, 220), (240, 290)), ((240, 290), (290, 320))]:
        draw.line([p(*a), p(*b)], fill=ink, width=w)
    return img


def save_png(data: bytes, out: Path, resize: tuple[int, int] | None) -> None:
    """Write a screenshot, optionally downscaled; quantized to a palette if above MAX_BYTES."""
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB")
    if resize:
        img = img.resize(resize, Image.LANCZOS)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out, optimize=True)
    if out.stat().st_size > MAX_BYTES:
        img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)


class Frontend:
    """One headless Chromium page on the ComfyUI frontend; collects console errors."""

    def __init__(self, host: ComfyHost, width: int, height: int, user_data_dir: Path) -> None:
        from playwright.sync_api import sync_playwright

        self.host = host
        self.console: list[str] = []
        self.blocked: list[str] = []
        self._pw = sync_playwright().start()
        self.context = self._pw.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": width, "height": height}, service_workers="block",
        )
        self.context.route("**/*", self._route)
        self.context.add_init_script("localStorage.setItem('vueNodesBannerDismissed', 'true')")  # "Nodes 2.0" banner
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {str(e)[:300]}"))

    def _console(self, message) -> None:
        if message.type != "error":
            return
        text = message.text
        if "Content Security Policy" in text or ("ERR_" in text and "127.0.0.1" not in text):
            self.blocked.append(text.split("'")[1] if text.count("'") >= 2 else text[:200])  # offline by design
        else:
            self.console.append(f"console: {text[:300]}")

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith((self.host.url + "/", "data:", "blob:", "about:")) or url == self.host.url:
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def open(self) -> None:
        page = self.page
        page.goto(self.host.url + "/", wait_until="load", timeout=120_000)
        page.wait_for_function("() => window.app && window.app.graph && window.app.canvas && "
                               "window.app.extensionManager && window.app.extensionManager.command",
                               timeout=120_000)
        page.wait_for_timeout(2000)  # extensions and node definitions settle
        self.dismiss_dialogs()
        # Record every missing-node report of loadGraphData (the dialog is still shown as well).
        page.evaluate("""() => {
            window.__missing = [];
            const orig = app.showMissingNodesError.bind(app);
            app.showMissingNodesError = (types, ...rest) => { window.__missing.push(...types); return orig(types, ...rest); };
        }""")

    def dialogs(self) -> list[str]:
        return self.page.evaluate("""() => [...document.querySelectorAll('.p-dialog, [role=dialog]')]
            .filter(d => d.offsetParent !== null || d.getClientRects().length)
            .map(d => d.innerText.trim().replace(/\\s+/g, ' ').slice(0, 300))""")

    def dismiss_dialogs(self) -> list[str]:
        seen = []
        for _ in range(5):
            texts = self.dialogs()
            if not texts:
                break
            seen += texts
            self.page.keyboard.press("Escape")
            self.page.evaluate("""() => document.querySelectorAll(
                '.p-dialog-close-button, .p-dialog-header-close, .p-toast-close-button').forEach(b => b.click())""")
            self.page.wait_for_timeout(300)
        return seen

    def shoot(self, workflow: dict, name: str, focus: bool) -> tuple[bytes, dict]:
        page = self.page
        page.evaluate("() => { window.__missing = []; }")
        page.evaluate("async ([wf, name]) => { await app.loadGraphData(wf, true, true, name); }", [workflow, name])
        page.wait_for_function("(n) => app.graph.nodes.length === n", arg=len(workflow["nodes"]), timeout=30_000)
        page.evaluate("""async () => {  // close the other tabs (the start-up default graph, earlier shots)
            const store = app.extensionManager.workflow;
            for (const w of [...store.openWorkflows]) if (w !== store.activeWorkflow) await store.closeWorkflow(w);
        }""")
        page.wait_for_timeout(1500)  # widgets, image/audio previews load
        report = page.evaluate("""() => ({
            missing: window.__missing.slice(),
            unregistered: app.graph.nodes.filter(n => n.has_errors || !n.constructor.nodeData).map(n => n.type),
            layout: app.graph.nodes.map(n => [n.id, n.type, [...n.pos], [...n.size], [...n.computeSize()]]),
        })""")
        report["dialogs"] = self.dismiss_dialogs()
        page.evaluate("() => document.querySelectorAll('.p-toast-close-button').forEach(b => b.click())")
        focused = page.evaluate("() => app.extensionManager.focusMode ?? null")
        if focused is not None and bool(focused) != focus:
            page.evaluate("() => app.extensionManager.command.execute('Workspace.ToggleFocusMode')")
            page.wait_for_timeout(500)
        page.evaluate("(show) => app.extensionManager.setting.set('Comfy.Graph.CanvasMenu', show)", not focus)
        page.evaluate("() => app.extensionManager.command.execute('Comfy.Canvas.FitView')")
        page.wait_for_timeout(800)  # the fit is animated
        page.evaluate("() => app.canvas.setDirty(true, true)")
        page.wait_for_timeout(300)
        report["nodes"] = len(workflow["nodes"])
        return page.screenshot(type="png"), report

    def close(self) -> None:
        try:
            self.context.close()
        finally:
            self._pw.stop()


def parse_size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflow", action="append", default=[], help="UI-format workflow JSON (repeatable)")
    parser.add_argument("--out", action="append", default=[], help="PNG to write, one per --workflow")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--resize", type=parse_size, help="downscale the PNG to WxH, e.g. 640x360")
    parser.add_argument("--focus", action="store_true", help="hide the frontend's menus and panels (focus mode)")
    parser.add_argument("--layout", action="store_true", help="print each node's pos, size and minimum size")
    parser.add_argument("--all", action="store_true",
                        help="every workflows/*.json to docs/<name>.png and a 640x360 workflows/<name>.png thumbnail")
    args = parser.parse_args()

    jobs: list[tuple[Path, Path, tuple[int, int] | None, bool]] = []
    if args.all:
        for wf in sorted((ROOT / "workflows").glob("*.json")):
            jobs.append((wf, ROOT / "docs" / f"{wf.stem}.png", args.resize, args.focus))
            jobs.append((wf, wf.with_suffix(".png"), (640, 360), True))
    if len(args.workflow) != len(args.out):
        parser.error("give one --out per --workflow")
    jobs += [(Path(w), Path(o), args.resize, args.focus) for w, o in zip(args.workflow, args.out)]
    if not jobs:
        parser.error("nothing to do: give --workflow/--out or --all")

    started = time.monotonic()
    failed = False
    with tempfile.TemporaryDirectory(prefix="musedance-shot-") as tmp:
        host = ComfyHost(comfy_path(), Path(tmp) / "host")
        host._write_config()  # creates models/ and input/ before the server lists them
        prepare_host(host)
        with host:
            print(f"ComfyUI up at {host.url} after {host.startup_seconds:.1f} s")
            host._request("POST", "/settings", json=SETTINGS)
            frontend = Frontend(host, args.width, args.height, Path(tmp) / "chromium-profile")
            try:
                frontend.open()
                for wf_path, out, resize, focus in jobs:
                    workflow = json.loads(wf_path.read_text())
                    errors_before = len(frontend.console)
                    png, report = frontend.shoot(workflow, wf_path.stem, focus)
                    save_png(png, out, resize)
                    missing = sorted(set(report["missing"]) | set(report["unregistered"]))
                    failed |= bool(missing)
                    print(f"{wf_path.name} -> {out} ({out.stat().st_size // 1024} KB): {report['nodes']} nodes, "
                          f"missing nodes: {missing or 'none'}, dialogs: {report['dialogs'] or 'none'}, "
                          f"console errors: {frontend.console[errors_before:] or 'none'}")
                    if args.layout:
                        for node_id, kind, pos, size, minimum in report["layout"]:
                            print(f"  {node_id:>3} {kind:<24} pos={pos} size={size} min={[round(v) for v in minimum]}")
                if frontend.blocked:
                    print(f"blocked off-host requests: {sorted(set(frontend.blocked))}")
            finally:
                frontend.close()
    print(f"done in {time.monotonic() - started:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
