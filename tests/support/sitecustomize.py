"""Loaded at start-up by every Python process whose PYTHONPATH holds this folder (the tests of
distributed training put it there): with WRITE_AUDIT_DIR set, records each file-system write
under WRITE_AUDIT_WATCH (open for writing, mkdir, rename/replace, remove, rmtree) to
WRITE_AUDIT_DIR/writes-<RANK>.txt, through Python's audit hooks (PEP 578)."""

import os
import sys

_DIR = os.environ.get("WRITE_AUDIT_DIR")
_WATCH = os.environ.get("WRITE_AUDIT_WATCH", "")
if _DIR and _WATCH:
    _LOG = open(os.path.join(_DIR, f"writes-{os.environ.get('RANK', 'none')}.txt"), "a", buffering=1)  # noqa: SIM115
    _EVENTS = {"os.mkdir", "os.rename", "os.replace", "os.remove", "os.unlink", "os.rmdir", "shutil.rmtree"}

    def _path(value) -> str:
        try:
            return os.path.abspath(os.fsdecode(value))
        except TypeError:  # a file descriptor
            return ""

    def _audit(event: str, args: tuple) -> None:
        if event == "open":
            mode = args[1] if len(args) > 1 else "r"
            flags = args[2] if len(args) > 2 else 0
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            paths = [args[0]] if writing else []
        elif event in _EVENTS:
            paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
        else:
            return
        for value in paths:
            path = _path(value)
            if path.startswith(_WATCH):
                _LOG.write(f"{event} {path}\n")

    sys.addaudithook(_audit)
