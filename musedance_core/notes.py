"""Notes: what the core tells the user about a run it still makes (frames cut to the music, a
size rounded to a multiple of 8, a prompt cut at 77 tokens, beats found with low confidence, ...).

A note is data, not a Python warning. A warning shows once per code location per process, so a
ComfyUI server would never show the second run's notes; a note reaches every run:

    with collect_notes() as notes:      # a list, filled as the block runs
        result = pipe(...)
    print(notes)

``note(message)`` logs the message on the ``musedance`` logger at WARNING level (the server log,
a training script's stderr) and appends it to every collector open in the current context.
Collectors nest (the pipeline collects the notes of its own call while the ComfyUI node around
it collects the node's); they live in a ``ContextVar``, so threads and asyncio tasks each see
their own. A thread started inside a block does not report into it unless it runs in a copy of
the context (``contextvars.copy_context().run``).

A collector's ``label`` (a node's name, a batch row) prefixes the log line, so a server log says
which node a note came from; the collected messages stay as they are. How the CLI prints notes:
see cli.py (``console_logging``) and docs/ARCHITECTURE.md, Notes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

LOGGER_NAME = "musedance"
# Attributes of a note's log record: the message without its label, and the label (or None),
# for a handler that lays the two out itself (the CLI's ``label: warning: message``).
NOTE_ATTR, LABEL_ATTR = "musedance_note", "musedance_note_label"


@dataclass
class _Collector:
    label: str | None
    notes: list[str] = field(default_factory=list)


_open: ContextVar[tuple[_Collector, ...]] = ContextVar("musedance_note_collectors", default=())


def note(message: str) -> None:
    """Tell the user ``message``: log it (``musedance`` logger, WARNING) and append it to every
    open collector. Said as often as it is called: nothing is shown only once per process."""
    collectors = _open.get()
    for collector in collectors:
        collector.notes.append(message)
    label = next((c.label for c in reversed(collectors) if c.label), None)
    extra = {NOTE_ATTR: message, LABEL_ATTR: label}
    logger = logging.getLogger(LOGGER_NAME)
    if label:
        logger.warning("%s: %s", label, message, extra=extra)
    else:
        logger.warning("%s", message, extra=extra)


@contextlib.contextmanager
def collect_notes(label: str | None = None) -> Iterator[list[str]]:
    """Collect the notes made inside the block, in order, into the yielded list.

    ``label``: named in the log line of each note made inside (the innermost label wins)."""
    collector = _Collector(label)
    token = _open.set((*_open.get(), collector))
    try:
        yield collector.notes
    finally:
        _open.reset(token)
