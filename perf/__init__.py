"""Benchmarks: each prints a table and compares against a baseline measured in the same run.

Run them from the repository root with the project's interpreter::

    .venv/bin/python -m perf.engine_throughput
    .venv/bin/python -m perf.startup

See docs/benchmarks.md for what they measure and the latest numbers.
"""
