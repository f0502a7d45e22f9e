"""Timing benchmarks for Radar (run as modules, e.g. ``python -m benchmarks.train_bench``)."""
