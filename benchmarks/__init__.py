"""Gantry's benchmarks: run them all with ``python -m benchmarks [--quick]``.

Each ``bench_*.py`` script also runs on its own (``python benchmarks/bench_ingest.py``);
see ``run_all.py`` for the suite and the page it writes (``benchmarks/results.md``).
"""
