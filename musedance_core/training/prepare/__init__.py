"""Build a MuseDance training data set from a folder of dance videos with sound.

Run by ``training/prepare_dataset.py`` (its command line). Modules: ``config`` (the settings),
``sources`` (videos, keys, splits, sidecar captions and masks), ``frames`` (frames at the data
set's fps and size), ``clips`` (one video to clips), ``run`` (the whole folder, resumable).

Every video (mp4, mov, webm, mkv, m4v; found recursively) is read once, streaming:

* Frames are resampled to ``--fps`` by timestamp (output frame k shows the source frame whose time
  is nearest k / fps, so variable-frame-rate files work), rotated as the file's display matrix says,
  resized to cover ``width x height`` and centre-cropped.
* The soundtrack is analysed once as a whole (music features, ``--music-encoder``, and tracked
  beats), then sliced per clip, so clip edges have no edge effects; feature rows are aligned with
  frames (row k = frame k).
* Clips of ``--clip-seconds`` start every ``--stride-seconds``; ``--max-clips-per-video N`` keeps N
  of them spread evenly over the video. Each clip's audio span is saved as ``audio/<id>.flac``.

Captions, per clip, first found wins:
  1. ``--captions-from sidecar`` (default): ``<video>.txt`` (the whole text) or ``<video>.json``
     holding ``{"caption": "..."}`` or ``{"captions": [{"start": s, "end": e, "text": "..."}]}``
     (the entry overlapping the clip most; ``caption`` is the fallback). ``<video>`` is the file
     name with or without its extension (``dance.txt`` or ``dance.mp4.txt``).
  2. ``--caption-hook file.py:function`` (or ``installed.module:function``): a local function
     ``(frames, fps) -> str`` called per clip with ``frames`` uint8 [T, H, W, 3] (the clip as
     saved) and ``fps``. It is loaded once per worker process and must not need the network at
     load or call; it runs in the worker processes, so keep it light or use ``--workers 1``.
  3. ``DEFAULT_CAPTION``.

Masks (optional, ``--masks DIR``): for ``<videos>/<sub>/<stem>.<ext>`` either a mask video
``DIR/<sub>/<stem>.<any video ext>`` (resampled by timestamp like the video) or a folder of
per-source-frame PNGs ``DIR/<sub>/<stem>/00001.png ...`` (sorted by name; PNG i is source frame i).
White (>= 128) is the subject. Videos without a mask get no ``mask`` array (the trainer uses all ones).

Split: whole videos are 'val' when a hash of their relative path falls below ``--val-fraction``
(deterministic; a video keeps its split when others are added).

Resuming: a rerun skips clips already in ``manifest.jsonl`` (a video whose clips are all there is
not decoded again). ``dataset.json`` records the settings; a rerun with different ones is refused.
Unusable videos (unreadable, no audio stream, silent, too short, bad sidecar or mask) are skipped
and listed in ``skipped.jsonl`` (rewritten each run) with the reason; a summary is printed.
The format is in ``musedance_core/training/dataset.py``.
"""
