"""``flightos report RUN``: the timeline of a recorded run as a PNG and a self-contained HTML page.

    from flightos.report import render
    result = render(Path("runs/20261126T103000Z-12345"))   # result.png, result.html, result.summary

matplotlib (``pip install 'flightos[report]'``) is imported only when a figure is drawn, so
``load_run`` and ``summarize`` work without it. docs/report.md describes the run format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flightos.report.model import Event, ReportError, Run, Sample, load_run
from flightos.report.summary import summarize

PNG_NAME, HTML_NAME = "report.png", "report.html"

__all__ = ["Event", "ReportError", "ReportResult", "Run", "Sample", "load_run", "render", "summarize"]


@dataclass(frozen=True)
class ReportResult:
    """Where the report was written, and the summary it shows."""

    png: Path
    html: Path
    summary: dict[str, Any]


def render(run_dir: Path | str, out_dir: Path | str | None = None) -> ReportResult:
    """Write ``report.png`` and ``report.html`` for a run into ``out_dir`` (default: the run directory).

    Raises ReportError when the run cannot be read (naming the missing file) or matplotlib is missing.
    """
    from flightos.report.page import html_page
    from flightos.report.plot import render_png

    run = load_run(run_dir)
    summary = summarize(run)
    png_bytes = render_png(run)
    out = Path(out_dir) if out_dir is not None else Path(run_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        png, html = out / PNG_NAME, out / HTML_NAME
        png.write_bytes(png_bytes)
        html.write_text(html_page(run, summary, png_bytes), encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write the report into {out}: {exc}") from exc
    return ReportResult(png, html, summary)
