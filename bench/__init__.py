"""flightos benchmarks: `python -m bench` prints every figure of DESIGN.md §10 against a same-run baseline."""
