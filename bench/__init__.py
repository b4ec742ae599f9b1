"""Benchmarks: training throughput per sequence mode, data preparation speed, memory switches.

Run them from the project root as scripts (``python bench/train_throughput.py --help``); each prints a
table and writes JSON with ``--json_out``. Figures and commands are in ``docs/benchmarks.md``.
"""
