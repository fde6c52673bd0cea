"""Chaos runs: `python -m chaos` (or `--quick`). Each scenario breaks something for real, then
checks the database: the build ends as it should, counts exact, no duplicate rows, no step lost."""
