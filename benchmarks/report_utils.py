"""Provenance shared by the benchmark reports: the git revision, the exact command line and the machine."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def git_revision() -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=False)
    except OSError:
        return None
    return result.stdout.strip() or None


def command_line() -> str:
    """The command that produced the report, the interpreter relative to the working directory when inside it.

    A benchmark run as a module (``python -m benchmarks.beat_benchmark``) is shown that way, not by its
    file path (what ``sys.argv[0]`` holds then)."""
    python = Path(sys.executable).absolute()
    shown = str(python.relative_to(Path.cwd())) if python.is_relative_to(Path.cwd()) else str(python)
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    program = ["-m", spec.name] if spec is not None else sys.argv[:1]
    return shlex.join([shown, *program, *sys.argv[1:]])


def publish(markdown: str, report: dict, markdown_path: Path | None, json_path: Path | None) -> None:
    """Print the Markdown report and write it (and the full numbers as JSON) where asked."""
    import json

    print(markdown)
    if markdown_path:
        Path(markdown_path).write_text(markdown)
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=1))


def machine_info(**extra) -> dict:
    """CPU model, core count, torch threads, memory, library versions and git revision (+ ``extra``)."""
    import diffusers
    import numpy as np
    import torch

    cpu = platform.processor() or "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "memory_gb": round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1),
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "diffusers": diffusers.__version__, "numpy": np.__version__},
            "git": git_revision(), **extra}
