"""SynthDance: a procedurally generated music-dance data set with exact beats and exact motion.

Made by ``training/synth_dance.py`` (its command line). Modules: ``motion`` (the dance styles as
beat-locked motion, and the style of a motion), ``appearance`` (subjects, colours, captions,
rendering), ``generator`` (songs, clips, the data set), ``preview``.

Each clip is a simple subject (circle, square, star, triangle, stick figure, blob, robot) with random
colours on a plain, two-tone or gradient background, moving in one of ``STYLES`` locked to the beats
of procedural music (``musedance_core.audio.synth``), with a caption that names subject, colour and
style. Clips are cut from "songs": each song is rendered once, analysed once (music features and
tracked beats over the whole song, then sliced, so clips have no edge effects), and gives
``--clips-per-song`` clips with different subjects, styles and start times. Whole songs go to the
validation split, so validation music is never heard in training.

Everything is a pure function of (seed, index): clip ``i`` is the same whatever ``--clips`` is, a
rerun skips the clips already in the manifest, and ``--workers`` processes songs in parallel.
The format is in ``musedance_core/training/dataset.py``.
"""
