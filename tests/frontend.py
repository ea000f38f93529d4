"""The real ComfyUI frontend in headless Chromium, driven through Playwright, for tests and scripts.

``Frontend`` opens the frontend a running ``ComfyHost`` serves, with the first-run popups off
(``SETTINGS``), and does what a user does with a workflow file: load it (``load``, the frontend's
own ``app.loadGraphData``, reporting missing-node/missing-model dialogs and console errors), change
widgets (``set_widget``), press Queue (``queue``: ``app.queuePrompt``, so the frontend's own
``graphToPrompt`` turns the UI graph into the prompt it posts) and read widgets back
(``widget_value``):

    from tests.comfy_host import ComfyHost, require_comfy
    from tests.frontend import Frontend, require_frontend

    require_frontend()                               # skip (or fail when CI=true) without Chromium/Playwright
    with ComfyHost(require_comfy()) as host, Frontend(host) as ui:
        report = ui.load(json.loads(path.read_text()), "musedance_dance")
        assert not report.missing_nodes and not report.console
        ui.set_widget("MuseDanceAnimateImage", "steps", 2)
        prompt_id = ui.queue()
        host.wait(prompt_id, timeout=300)
        ui.wait_done(prompt_id)                      # the page has seen the run end (node UI updated)

Needs Debian ``chromium`` (``apt-get install chromium``; ``CHROMIUM`` env var for another binary)
and ``pip install playwright`` (no ``playwright install``: the system Chromium is used). Chromium
can only reach 127.0.0.1: other host names fail to resolve and every request that is not for the
ComfyUI server (or a data:/blob: URL) is aborted and listed in ``Frontend.blocked``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.comfy_host import ComfyHost, skip_or_fail

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--metrics-recording-only",
    "--disable-dev-shm-usage",  # small /dev/shm in containers
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
SETTINGS = {  # first-run popups and overlays off; the missing-nodes/models warnings stay ON (they are checked)
    "Comfy.TutorialCompleted": True,
    "Comfy.Minimap.Visible": False,
    "Comfy.Notification.ShowVersionUpdates": False,
    "Comfy.Workflow.ShowMissingNodesWarning": True,
    "Comfy.Workflow.ShowMissingModelsWarning": True,
    "Comfy.Graph.CanvasInfo": False,  # the fps/node-count overlay
    "LiteGraph.Canvas.MinFontSizeForLOD": 0,  # always draw titles and widgets, even zoomed out
}
# Set through the settings store once the app runs: while it starts, the frontend sets this one
# itself (to 8, its render-mode sync for LiteGraph nodes), which would override a stored value.
LIVE_SETTINGS = {"LiteGraph.Canvas.MinFontSizeForLOD"}
# 404s every fresh ComfyUI user folder answers (no user.css, no saved workflows/subgraphs/templates):
# the frontend logs them as console errors; they are not errors of the page or of a workflow.
FRESH_USER_404 = ("/api/userdata", "/user.css")
# Console errors of the frontend itself on every start, with or without any custom node: the render-
# mode sync above sets that setting before its definition exists and settingStore's onChange reads
# `.id` of undefined (frontend 1.32.9; Comfy-Org/ComfyUI_frontend#6747).
KNOWN_FRONTEND_ERRORS = (("Cannot read properties of undefined (reading 'id')", "at onChange"),)
PAGE_TIMEOUT = 120_000  # ms: first page load and app start-up on a slow machine
INSTALL_HINT = ("the frontend tests need Debian chromium and Playwright: `sudo apt-get install chromium` and "
                "`pip install playwright` (bash scripts/setup.sh does both)")


class FrontendError(RuntimeError):
    """The frontend did not load, did not queue, or a node/widget asked for is not in the graph."""


def chromium_path() -> str | None:
    """The Chromium binary: ``CHROMIUM`` env var, else /usr/bin/chromium, else chromium on PATH."""
    value = os.environ.get("CHROMIUM", "").strip()
    if value:
        return value if os.access(value, os.X_OK) else None
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium") or shutil.which("chromium-browser")


def frontend_missing() -> str | None:
    """Why the frontend cannot be driven here (no Chromium, no Playwright), or None."""
    problems = []
    if chromium_path() is None:
        problems.append("no chromium binary")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("no playwright module")
    return f"{' and '.join(problems)}: {INSTALL_HINT}" if problems else None


def require_frontend() -> None:
    """Skip the test when Chromium or Playwright is missing; *fail* it when ``CI=true``."""
    reason = frontend_missing()
    if reason:
        skip_or_fail(reason)


@dataclass
class LoadReport:
    """What the frontend said while loading one workflow."""

    nodes: int  # nodes in the loaded graph
    missing: list[str] = field(default_factory=list)  # node types the missing-nodes dialog named
    unregistered: list[str] = field(default_factory=list)  # graph nodes without a node definition
    missing_models: list[str] = field(default_factory=list)  # files the missing-models dialog named
    dialogs: list[str] = field(default_factory=list)  # text of dialogs that were open after loading
    console: list[str] = field(default_factory=list)  # console errors and page errors during the load

    @property
    def missing_nodes(self) -> list[str]:
        return sorted(set(self.missing) | set(self.unregistered))


class Frontend:
    """One headless Chromium page on a running ComfyHost's frontend (a context manager).

    Attributes: ``console`` (every console error and uncaught page error, in order), ``blocked``
    (off-host requests that were aborted: the test machine is offline by design), ``ignored`` (the
    404s of a fresh user folder and ``KNOWN_FRONTEND_ERRORS``), ``page`` (the Playwright page, for anything else).
    """

    def __init__(self, host: ComfyHost, width: int = 1600, height: int = 900,
                 user_data_dir: Path | str | None = None, settings: dict[str, Any] | None = None) -> None:
        self.host = host
        self.width, self.height = width, height
        self.settings = dict(SETTINGS if settings is None else settings)
        self._own_profile = user_data_dir is None
        self.user_data_dir = Path(user_data_dir) if user_data_dir else Path(tempfile.mkdtemp(prefix="musedance-chromium-"))
        self.console: list[str] = []
        self.blocked: list[str] = []
        self.ignored: list[str] = []  # FRESH_USER_404 and KNOWN_FRONTEND_ERRORS
        self.console_at_open: list[str] = []  # the console errors while the frontend started
        self.page = None
        self.context = None
        self._pw = None

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> Frontend:  # noqa: PYI034
        try:
            self.start()
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self) -> None:
        """Store the settings on the server and launch Chromium (no page load yet)."""
        from playwright.sync_api import sync_playwright

        reason = frontend_missing()
        if reason:
            raise FrontendError(reason)
        stored = {k: v for k, v in self.settings.items() if k not in LIVE_SETTINGS}
        self.host._request("POST", "/settings", json=stored)  # read by the frontend at start-up
        self._pw = sync_playwright().start()
        self.context = self._pw.chromium.launch_persistent_context(
            str(self.user_data_dir), executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": self.width, "height": self.height}, service_workers="block",
        )
        self.context.route("**/*", self._route)
        self.context.add_init_script("localStorage.setItem('vueNodesBannerDismissed', 'true')")  # "Nodes 2.0" banner
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {str(e)[:500]}"))

    def open(self) -> None:
        """Load the frontend, wait for the app, close start-up dialogs and hook the load reports."""
        page = self.page
        page.goto(self.host.url + "/", wait_until="load", timeout=PAGE_TIMEOUT)
        page.wait_for_function("() => window.app && window.app.graph && window.app.canvas && "
                               "window.app.extensionManager && window.app.extensionManager.command && "
                               "window.app.api", timeout=PAGE_TIMEOUT)
        page.wait_for_timeout(1500)  # extensions and node definitions settle
        live = {k: v for k, v in self.settings.items() if k in LIVE_SETTINGS}
        page.evaluate("async (s) => { for (const [k, v] of Object.entries(s)) await app.extensionManager.setting.set(k, v); }",
                      live)
        self.dismiss_dialogs()
        # Record every missing-node/model report of loadGraphData (the dialogs are still shown) and
        # every prompt the server says has ended (its "executed" messages came before).
        page.evaluate("""() => {
            window.__musedance = {missing: [], models: [], ended: {}};
            const state = window.__musedance;
            const nodes = app.showMissingNodesError.bind(app);
            app.showMissingNodesError = (types, ...rest) => {
                state.missing.push(...types.map(t => typeof t === 'string' ? t : t.type));
                return nodes(types, ...rest);
            };
            const models = app.showMissingModelsError.bind(app);
            app.showMissingModelsError = (list, ...rest) => {
                state.models.push(...list.map(m => `${m.directory}/${m.name}`));
                return models(list, ...rest);
            };
            for (const name of ['execution_success', 'execution_error', 'execution_interrupted'])
                app.api.addEventListener(name, e => { state.ended[e.detail.prompt_id] = name; });
        }""")
        self.console_at_open = list(self.console)

    def close(self) -> None:
        try:
            if self.context is not None:
                self.context.close()
        finally:
            self.context = self.page = None
            if self._pw is not None:
                self._pw.stop()
                self._pw = None
            if self._own_profile:
                shutil.rmtree(self.user_data_dir, ignore_errors=True)

    # ---------------------------------------------------------------- network and console
    def _route(self, route) -> None:
        url = route.request.url
        if url == self.host.url or url.startswith((self.host.url + "/", "data:", "blob:", "about:")):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def _console(self, message) -> None:
        if message.type != "error":
            return
        text = message.text
        where = (message.location or {}).get("url", "")
        if "Content Security Policy" in text:  # the page tried another host: blocked, offline by design
            self.blocked.append(text.split("'")[1] if text.count("'") >= 2 else text[:200])
        elif "ERR_" in text and not where.startswith(self.host.url + "/"):  # an aborted off-host request
            self.blocked.append(where or text[:200])
        elif "404" in text and where.startswith(tuple(self.host.url + p for p in FRESH_USER_404)):
            self.ignored.append(f"{text[:200]} ({where})")
        elif any(all(part in text for part in known) for known in KNOWN_FRONTEND_ERRORS):
            self.ignored.append(text[:200])
        else:
            self.console.append(f"console: {text[:500]}" + (f" ({where})" if where and where not in text else ""))

    # ---------------------------------------------------------------- dialogs
    def dialogs(self) -> list[str]:
        """Text of the dialogs that are open now."""
        return self.page.evaluate("""() => [...document.querySelectorAll('.p-dialog, [role=dialog]')]
            .filter(d => d.offsetParent !== null || d.getClientRects().length)
            .map(d => d.innerText.trim().replace(/\\s+/g, ' ').slice(0, 300))""")

    def dismiss_dialogs(self) -> list[str]:
        """Close open dialogs and toasts; returns the text of the dialogs closed."""
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

    # ---------------------------------------------------------------- workflows
    def load(self, workflow: dict[str, Any], name: str = "workflow", settle_ms: int = 1000) -> LoadReport:
        """Open a UI-format workflow as a user would (``app.loadGraphData``), as the only tab."""
        page = self.page
        errors_before = len(self.console)
        page.evaluate("() => { window.__musedance.missing = []; window.__musedance.models = []; }")
        page.evaluate("async ([wf, name]) => { await app.loadGraphData(wf, true, true, name); }", [workflow, name])
        page.wait_for_function("(n) => app.graph.nodes.length === n", arg=len(workflow.get("nodes", [])),
                               timeout=30_000)
        page.evaluate("""async () => {  // close the other tabs (the start-up default graph, earlier loads)
            const store = app.extensionManager.workflow;
            for (const w of [...store.openWorkflows]) if (w !== store.activeWorkflow) await store.closeWorkflow(w);
        }""")
        page.wait_for_timeout(settle_ms)  # widgets, image/audio previews load
        state = page.evaluate("""() => ({
            nodes: app.graph.nodes.length,
            missing: window.__musedance.missing.slice(),
            models: window.__musedance.models.slice(),
            unregistered: app.graph.nodes.filter(n => n.has_errors || !n.constructor.nodeData).map(n => n.type),
        })""")
        return LoadReport(nodes=state["nodes"], missing=state["missing"], unregistered=state["unregistered"],
                          missing_models=state["models"], dialogs=self.dismiss_dialogs(),
                          console=self.console[errors_before:])

    def layout(self) -> list[tuple[int, str, list[float], list[float], list[float]]]:
        """Each node's id, type, pos, size and minimum size (``computeSize``)."""
        return [tuple(row) for row in self.page.evaluate(
            "() => app.graph.nodes.map(n => [n.id, n.type, [...n.pos], [...n.size], [...n.computeSize()]])")]

    def set_widget(self, node_type: str, widget_name: str, value: Any) -> int:
        """Set a widget on every node of ``node_type`` (as typing into it would, callback included);
        returns how many nodes changed. Raises if no node of that type has the widget."""
        changed = self.page.evaluate("""([type, name, value]) => {
            let changed = 0;
            for (const node of app.graph.nodes.filter(n => n.type === type)) {
                const widget = node.widgets?.find(w => w.name === name);
                if (!widget) continue;
                widget.value = value;
                widget.callback?.(widget.value, app.canvas, node);
                changed++;
            }
            app.graph.setDirtyCanvas(true, true);
            return changed;
        }""", [node_type, widget_name, value])
        if not changed:
            raise FrontendError(f"no {node_type} node with a widget {widget_name!r} in the loaded graph: "
                                f"{self.widgets()}")
        return changed

    def widget_value(self, node_type: str, widget_name: str, index: int = 0) -> Any:
        """The value of a widget of the ``index``-th node of ``node_type``; None if that node has no
        such widget (e.g. a notes box a run has not added). Raises if there is no such node."""
        found = self.page.evaluate("""([type, name, index]) => {
            const node = app.graph.nodes.filter(n => n.type === type)[index];
            if (!node) return {node: false};
            const widget = node.widgets?.find(w => w.name === name);
            return {node: true, has: !!widget, value: widget ? widget.value : null};
        }""", [node_type, widget_name, index])
        if not found["node"]:
            raise FrontendError(f"no {node_type} node #{index} in the loaded graph: {self.widgets()}")
        return found["value"] if found["has"] else None

    def widgets(self) -> dict[str, list[str]]:
        """``"<id> <type>"`` -> widget names, for the loaded graph (error messages, debugging)."""
        return self.page.evaluate(
            "() => Object.fromEntries(app.graph.nodes.map(n => [`${n.id} ${n.type}`, (n.widgets ?? []).map(w => w.name)]))")

    def graph_to_prompt(self) -> dict[str, Any]:
        """The API prompt the frontend would queue for the loaded graph (``app.graphToPrompt``)."""
        return self.page.evaluate("async () => (await app.graphToPrompt()).output")

    def queue(self, timeout: float = 60.0) -> str:
        """Press Queue: ``app.queuePrompt(0, 1)`` converts the graph and posts it; returns the
        prompt_id from the server's answer. A rejected prompt raises with the server's errors."""
        errors_before = len(self.console)
        try:
            with self.page.expect_response(
                lambda r: r.request.method == "POST" and r.url.split("?")[0].endswith("/prompt"),
                timeout=timeout * 1000,
            ) as answer:
                self.page.evaluate("async () => { await app.queuePrompt(0, 1); }")
        except Exception as exc:  # graphToPrompt failed, or nothing was posted
            raise FrontendError(f"the frontend posted no prompt ({exc}); console: {self.console[errors_before:]}; "
                                f"dialogs: {self.dialogs()}") from exc
        response = answer.value
        try:
            body = response.json()
        except Exception:  # noqa: BLE001
            body = {"text": response.text()[:4000]}
        if response.status != 200 or body.get("node_errors") or "prompt_id" not in body:
            raise FrontendError(f"POST /prompt from the frontend -> HTTP {response.status}: {body}; "
                                f"dialogs: {self.dismiss_dialogs()}")
        return body["prompt_id"]

    def wait_done(self, prompt_id: str, timeout: float = 30.0) -> str:
        """Wait until the page has received the end of a prompt's run (so its nodes' ``onExecuted``
        ran); returns execution_success, execution_error or execution_interrupted."""
        self.page.wait_for_function("(id) => id in window.__musedance.ended", arg=prompt_id, timeout=timeout * 1000)
        return self.page.evaluate("(id) => window.__musedance.ended[id]", prompt_id)

    # ---------------------------------------------------------------- pictures
    def screenshot(self, focus: bool = False) -> bytes:
        """A PNG of the page with the graph fitted to the view; ``focus`` hides menus and panels."""
        page = self.page
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
        return page.screenshot(type="png")
