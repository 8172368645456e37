"""Recorded board trees for tests and benchmarks: sysfs/procfs builders and verbatim command outputs.

Not used at run time; it lives in ``hal`` so the HAL tests and ``bench/hal_bench.py`` share one copy
without the benchmark importing test modules.
"""
