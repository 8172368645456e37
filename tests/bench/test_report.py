"""The bench's Markdown table: what goes into the README's benchmark section, one row per figure."""

from __future__ import annotations

from bench.report import TIMES, Budget, Row, markdown


def test_markdown_rows_carry_value_baseline_ratio_budget_and_verdict() -> None:
    rows = [
        Row("command RTT p50", 120.0, "µs", 100.0, 1.2, Budget("ratio", "<=", 1.5)),
        Row("a | in a name", None, "", note="not measured"),
    ]
    lines = markdown(rows).splitlines()
    assert lines[0] == "| figure | value | baseline (same run) | ratio | budget | verdict |"
    assert lines[2] == f"| command RTT p50 | 120 µs | 100 µs | 1.20{TIMES} | ≤ 1.5{TIMES} | within budget |"
    assert lines[3].startswith("| a \\| in a name | — |")
    assert lines[3].endswith("| ERROR |")
