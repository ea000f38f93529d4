"""Benchmarks of the beat tracker, the model and training (figures in BENCHMARKS.md).

A package so the benchmarks import each other by name; run each from the repository root as a
module, e.g. ``.venv/bin/python -m benchmarks.beat_benchmark --quick``.
"""
