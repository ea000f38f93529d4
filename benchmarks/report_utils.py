"""Provenance shared by the benchmark reports: the git revision and the exact command line."""

from __future__ import annotations

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
    """The command that produced the report, the interpreter relative to the working directory when inside it."""
    python = Path(sys.executable).absolute()
    shown = str(python.relative_to(Path.cwd())) if python.is_relative_to(Path.cwd()) else str(python)
    return shlex.join([shown, *sys.argv])


def publish(markdown: str, report: dict, markdown_path: Path | None, json_path: Path | None) -> None:
    """Print the Markdown report and write it (and the full numbers as JSON) where asked."""
    import json

    print(markdown)
    if markdown_path:
        Path(markdown_path).write_text(markdown)
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=1))
