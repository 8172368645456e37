"""flightos benchmarks: `python -m bench` prints every figure of the README's benchmark table with its budget.

Each figure is measured against a baseline taken in the same run.
"""
