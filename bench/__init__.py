"""Benchmarks: `python -m bench` (or `--quick`). Each figure is measured beside its baseline in
the same run, on the same machine, and reported as a ratio."""
