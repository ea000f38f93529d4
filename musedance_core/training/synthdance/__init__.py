"""SynthDance: a procedurally generated music-dance data set with exact beats and exact motion.

Made by ``training/synth_dance.py``, whose docstring (its ``--help``) describes the clips, the
songs they are cut from, the splits and resuming. Modules: ``motion`` (the dance styles as
beat-locked motion, and the style of a motion), ``appearance`` (subjects, colours, captions,
rendering), ``generator`` (songs, clips, the data set), ``preview``. The format is in
``musedance_core/training/dataset.py``.
"""
