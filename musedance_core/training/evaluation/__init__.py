"""Evaluating a MuseDance bundle on a data set's held-out clips (SynthDance or prepared videos):
beat alignment against a shuffled-music control, motion style where the clips have one, appearance.

Run by ``training/evaluate.py``, whose docstring (its ``--help``) says what is generated and
measured; the stage-1 check by ``training/check_appearance.py``. Modules: ``run`` (generate and
score each clip, the report), ``tracking`` (the subject followed through frames), ``appearance``,
``beat_scores``, ``report``, ``appearance_check``.
"""
