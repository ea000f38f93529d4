"""A real ComfyUI server for integration tests (docs/ARCHITECTURE.md, Tests).

``ComfyHost`` starts ComfyUI's ``main.py`` headless on CPU, bound to 127.0.0.1 on a free
port, with every folder it writes to (input, output, temp, user) in a private temporary
directory and this repository loaded as the custom-node pack ``comfyui-musedance``
(through a symlink in a temp ``custom_nodes`` folder named in an extra_model_paths.yaml):

    from tests.comfy_host import ComfyHost, require_comfy

    def test_something(tmp_path):
        comfy = require_comfy()                  # skip (or fail when CI=true) if absent
        with ComfyHost(comfy, tmp_path) as host:
            info = host.object_info()             # {node_id: schema}
            prompt_id = host.queue(api_prompt)     # API-format JSON only
            entry = host.wait(prompt_id, timeout=60)
            files = host.output_files(entry)

Which ComfyUI: ``COMFYUI_PATH`` if set, else the one ``python -m scripts.comfyui_host
install`` puts in ``.cache/comfyui``. Which interpreter runs it: ``COMFYUI_PYTHON`` if set,
else the interpreter running the tests (the install script fills that environment).
Talks to the server with ``requests`` (installed by the install script).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_COMFYUI = REPO_ROOT / ".cache" / "comfyui"
PACK_NAME = "comfyui-musedance"  # folder name of the pack inside custom_nodes
INSTALL_HINT = "run `python -m scripts.comfyui_host install` (or set COMFYUI_PATH to a ComfyUI folder)"
STARTUP_TIMEOUT = 180.0  # s; a cold start on 2 CPU cores takes ~10-15 s
STOP_TIMEOUT = 10.0  # s between terminate() and kill()
POLL_INTERVAL = 0.2  # s
IMPORT_TIME_LINE = re.compile(r"^\s*([0-9.]+) seconds( \(IMPORT FAILED\))?: (.+)$")


class ComfyHostError(RuntimeError):
    """The ComfyUI server failed to start, rejected a prompt or failed to run it."""


def _is_comfyui(folder: Path) -> bool:
    return (folder / "main.py").is_file() and (folder / "comfy").is_dir()


def comfy_path() -> Path | None:
    """The ComfyUI folder to test against, or None if there is none.

    ``COMFYUI_PATH`` wins when set (a wrong value raises, it is never silently ignored);
    otherwise the default install location ``.cache/comfyui`` of this repository.
    """
    value = os.environ.get("COMFYUI_PATH", "").strip()
    if value:
        folder = Path(value).expanduser().resolve()
        if not _is_comfyui(folder):
            raise ComfyHostError(f"COMFYUI_PATH={value!r} has no main.py and comfy/; fix or unset it")
        return folder
    return DEFAULT_COMFYUI if _is_comfyui(DEFAULT_COMFYUI) else None


def comfy_python() -> str:
    """The interpreter that runs ComfyUI: ``COMFYUI_PYTHON`` if set, else this one."""
    return os.environ.get("COMFYUI_PYTHON", "").strip() or sys.executable


def require_comfy() -> Path:
    """The ComfyUI folder; skips the test if absent, but *fails* it when ``CI=true``."""
    folder = comfy_path()
    if folder is not None:
        try:
            import requests  # noqa: F401
        except ImportError:
            folder = None
    if folder is None:
        skip_or_fail(f"no ComfyUI test host: {INSTALL_HINT}")
    return folder


def skip_or_fail(message: str) -> None:
    """Skip a test that needs a real component that is missing; with ``CI=true``, fail it."""
    import pytest

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ComfyHost:
    """Context manager around one ComfyUI server process (see the module docstring).

    Args:
        comfy_dir: ComfyUI folder (default: ``comfy_path()``).
        workdir: folder for input/output/temp/user/log (default: a new temp folder, removed
            on exit; a given folder is kept so a failing test's log can be read).
        pack_dir: the pack loaded as ``custom_nodes/comfyui-musedance`` (default: this repo);
            None loads no pack.
        extra_args: more ``main.py`` arguments.
        disable_api_nodes: pass ``--disable-api-nodes`` (the paid cloud nodes; they cannot work
            offline and add ~300 node types to /object_info).
        startup_timeout: seconds to wait for ``GET /object_info`` to answer.
    """

    def __init__(
        self,
        comfy_dir: Path | str | None = None,
        workdir: Path | str | None = None,
        pack_dir: Path | str | None = REPO_ROOT,
        extra_args: tuple[str, ...] | list[str] = (),
        disable_api_nodes: bool = True,
        startup_timeout: float = STARTUP_TIMEOUT,
    ) -> None:
        folder = Path(comfy_dir) if comfy_dir is not None else comfy_path()
        if folder is None or not _is_comfyui(folder):
            raise ComfyHostError(f"no ComfyUI at {folder}: {INSTALL_HINT}")
        self.comfy_dir = folder.resolve()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="comfyhost-"))
        self.pack_dir = Path(pack_dir).resolve() if pack_dir is not None else None
        self.extra_args = list(extra_args)
        self.disable_api_nodes = disable_api_nodes
        self.startup_timeout = startup_timeout
        self.input_dir = self.workdir / "input"
        self.output_dir = self.workdir / "output"
        self.models_dir = self.workdir / "models"  # base_path of the extra_model_paths entry
        self.custom_nodes_dir = self.workdir / "custom_nodes"
        self.log_path = self.workdir / "comfyui.log"
        self.port = 0
        self.url = ""
        self.client_id = uuid.uuid4().hex
        self.startup_seconds = float("nan")
        self._process: subprocess.Popen | None = None
        self._log_file = None
        self._session = None

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> ComfyHost:  # noqa: PYI034  (Self needs Python 3.11)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _write_config(self) -> Path:
        for folder in (self.input_dir, self.output_dir, self.models_dir, self.custom_nodes_dir, self.workdir / "user"):
            folder.mkdir(parents=True, exist_ok=True)
        if self.pack_dir is not None:
            link = self.custom_nodes_dir / PACK_NAME
            if not link.is_symlink():
                link.symlink_to(self.pack_dir, target_is_directory=True)
        config = self.workdir / "extra_model_paths.yaml"
        # JSON is valid YAML; quoting keeps odd characters in temp paths harmless.
        config.write_text(
            "musedance:\n"
            f"    base_path: {json.dumps(str(self.models_dir))}\n"
            f"    custom_nodes: {json.dumps(str(self.custom_nodes_dir))}\n"
            "    musedance: musedance\n"  # <workdir>/models/musedance, so tests never write into ComfyUI
            "    checkpoints: checkpoints\n"
            "    animatediff_models: animatediff_models\n"
            "    audio_encoders: audio_encoders\n"
            "    musedance_music_encoders: musedance_music_encoders\n"
        )
        return config

    def command(self) -> list[str]:
        """The ``main.py`` command line (the port is chosen by ``start``)."""
        cmd = [
            comfy_python(), "main.py", "--cpu",
            "--listen", "127.0.0.1", "--port", str(self.port),
            "--disable-auto-launch",
            "--output-directory", str(self.output_dir),
            "--input-directory", str(self.input_dir),
            "--temp-directory", str(self.workdir),  # ComfyUI appends "temp" and wipes it
            "--user-directory", str(self.workdir / "user"),
            "--database-url", "sqlite:///:memory:",  # nothing written into the ComfyUI folder
            "--extra-model-paths-config", str(self.workdir / "extra_model_paths.yaml"),
        ]
        if self.disable_api_nodes:
            cmd.append("--disable-api-nodes")
        return cmd + self.extra_args

    def start(self) -> None:
        """Start the server and wait until ``GET /object_info`` answers."""
        import requests

        self._write_config()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115  (closed by stop())
        started = time.monotonic()
        self._process = subprocess.Popen(
            self.command(), cwd=self.comfy_dir, env=env,
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
        )
        self._session = requests.Session()
        deadline = started + self.startup_timeout
        while True:
            if self._process.poll() is not None:
                raise ComfyHostError(
                    f"ComfyUI exited with code {self._process.returncode} while starting; log:\n{self.log_tail()}"
                )
            try:
                if self._session.get(self.url + "/object_info", timeout=30).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise ComfyHostError(
                    f"ComfyUI did not answer GET /object_info within {self.startup_timeout:.0f} s; log:\n{self.log_tail()}"
                )
            time.sleep(POLL_INTERVAL)
        self.startup_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Terminate the server (kill it after ``STOP_TIMEOUT`` s); remove an own workdir."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(STOP_TIMEOUT)
        self._process = None
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # ---------------------------------------------------------------- log
    def log_text(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = 6000) -> str:
        text = self.log_text()
        return text if len(text) <= chars else "…" + text[-chars:]

    def import_times(self) -> dict[str, tuple[float, bool]]:
        """Custom-node folder name -> (import seconds, imported ok), from the startup log."""
        result = {}
        for line in self.log_text().splitlines():
            match = IMPORT_TIME_LINE.match(line)
            if match:
                result[Path(match.group(3)).name] = (float(match.group(1)), match.group(2) is None)
        return result

    # ---------------------------------------------------------------- HTTP API
    def _request(self, method: str, path: str, **kwargs) -> Any:
        if self._session is None:
            raise ComfyHostError("the ComfyUI host is not running (use it inside `with`)")
        response = self._session.request(method, self.url + path, timeout=kwargs.pop("timeout", 30), **kwargs)
        if response.status_code >= 400:
            raise ComfyHostError(f"{method} {path} -> HTTP {response.status_code}: {response.text[:4000]}")
        return response.json() if response.content else None

    def object_info(self, node_id: str | None = None) -> dict[str, Any]:
        """``GET /object_info``: node id -> schema (or the schema of one node)."""
        if node_id is None:
            return self._request("GET", "/object_info")
        return self._request("GET", f"/object_info/{node_id}")[node_id]

    def queue(self, prompt: dict[str, Any]) -> str:
        """``POST /prompt`` with an API-format prompt; returns its prompt_id.

        A rejected prompt raises ``ComfyHostError`` with ComfyUI's ``error`` and ``node_errors``.
        """
        answer = self._request("POST", "/prompt", json={"prompt": prompt, "client_id": self.client_id})
        if answer.get("node_errors"):
            raise ComfyHostError(f"prompt rejected: {json.dumps(answer['node_errors'], indent=1)}")
        return answer["prompt_id"]

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The ``/history/{id}`` entry of a finished prompt, or None while it is queued/running."""
        return self._request("GET", f"/history/{prompt_id}").get(prompt_id)

    def wait(self, prompt_id: str, timeout: float = 120.0, check: bool = True) -> dict[str, Any]:
        """Poll until the prompt finishes; returns its history entry.

        With ``check`` a failed or interrupted run raises ``ComfyHostError`` carrying
        ComfyUI's error message, traceback and the log tail.
        """
        deadline = time.monotonic() + timeout
        while True:
            entry = self.history(prompt_id)
            if entry is not None and entry.get("status", {}).get("completed") is not None:
                break
            if not self.running:
                raise ComfyHostError(f"ComfyUI died while running {prompt_id}; log:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise ComfyHostError(f"prompt {prompt_id} not finished after {timeout:.0f} s; log:\n{self.log_tail()}")
            time.sleep(POLL_INTERVAL)
        if check and entry["status"].get("status_str") != "success":
            details = [
                f"{name}: {data.get('exception_message', '')}\n{''.join(data.get('traceback', []))}"
                for name, data in entry["status"].get("messages", [])
                if name in ("execution_error", "execution_interrupted")
            ]
            raise ComfyHostError(
                f"prompt {prompt_id} ended with {entry['status'].get('status_str')}:\n"
                + "\n".join(details) + f"\nlog:\n{self.log_tail()}"
            )
        return entry

    def run(self, prompt: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        """``queue`` then ``wait``: the history entry of a successful run."""
        return self.wait(self.queue(prompt), timeout)

    def interrupt(self) -> None:
        """``POST /interrupt``: stop the prompt that is running now."""
        self._request("POST", "/interrupt", json={})

    def upload_file(self, path: Path | str, subfolder: str = "") -> str:
        """Copy a file into the input folder; returns the name a Load* node takes."""
        source = Path(path)
        target_dir = self.input_dir / subfolder
        target_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target_dir / source.name)
        return f"{subfolder}/{source.name}" if subfolder else source.name

    def output_files(self, entry: dict[str, Any]) -> list[Path]:
        """Files the run's output nodes saved (images, audio, video …), as paths on disk."""
        files = []
        for node_output in entry.get("outputs", {}).values():
            for items in node_output.values():
                if not isinstance(items, list):
                    continue
                for item in items:
                    if isinstance(item, dict) and "filename" in item and item.get("type") == "output":
                        files.append(self.output_dir / item.get("subfolder", "") / item["filename"])
        return files
