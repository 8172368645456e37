"""The timeline figure: core states, junction temperature, mode, power and event markers on one time axis.

matplotlib is imported here, lazily, through the Agg canvas only (no pyplot, no global backend).
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from flightos.report import timeline as tl
from flightos.report.model import ReportError, Run, fmt_duration

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIDTH_PX, HEIGHT_PX, DPI = 1600, 1000, 100
CORE_COLOURS = {"HEALTHY": "#43a047", "SUSPECT": "#fdd835", "DEGRADED": "#fb8c00", "OFFLINE": "#c62828"}
MODE_COLOURS = {"NOMINAL": "#43a047", "DEGRADED": "#fb8c00", "SAFE": "#c62828"}
UNKNOWN_COLOUR = "#9e9e9e"
Style = Literal["-", "--", "-.", ":"]
#: kind -> (colour, line style, line width)
MARKER_STYLES: dict[str, tuple[str, Style, float]] = {
    "restart": ("#7b1fa2", ":", 1.4),
    "migration": ("#1565c0", "--", 1.4),
    "mode change": ("#212121", "-", 1.6),
    "fault": ("#d50000", "-.", 1.4),
    "service failed": ("#4a0000", "-", 2.6),
}
CHAR_WIDTH = 0.0042  # of the time span, for an 8.5 pt label: a label that would overlap the previous is skipped
MIN_WIDTH = 0.005  # of the time span: the narrowest interval drawn
#: Runs longer than this get a last panel with the core states of their last ZOOM_S seconds, enlarged.
LONG_RUN_S, ZOOM_S = 300.0, 60.0


def _figure_class() -> type[Figure]:
    try:
        import matplotlib  # noqa: F401  (first, so a missing or blocked package fails here)
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ReportError("matplotlib is not installed: pip install 'flightos[report]'") from exc
    return Figure


def render_png(run: Run) -> bytes:
    """The figure as PNG bytes, WIDTH_PX x HEIGHT_PX. Raises ReportError without matplotlib."""
    figure_class = _figure_class()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figure_class(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    draw(fig, run)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": "flightos report"})
    return buf.getvalue()


def draw(fig: Figure, run: Run) -> None:
    """Draw every panel of a run onto an empty figure."""
    span = max(run.duration, 1.0)
    has_power = any(s.power_w is not None for s in run.samples)
    zoom = run.duration > LONG_RUN_S
    core_ratio = max(1.8, 0.6 * len(run.cores))
    ratios = [core_ratio, 3.0, 0.6] + ([2.0] if has_power else []) + ([core_ratio] if zoom else [])
    axes: Sequence[Axes] = fig.subplots(len(ratios), 1, gridspec_kw={"height_ratios": ratios})
    timeline = axes[: len(axes) - 1] if zoom else axes
    for ax in timeline:
        if ax is not timeline[0]:
            ax.sharex(timeline[0])
        if ax is not timeline[-1]:
            ax.tick_params(labelbottom=False)
        ax.set_xlim(0, span)
    for ax in axes:
        ax.grid(axis="x", color="#e0e0e0", linewidth=0.8)
        ax.set_axisbelow(True)
    _cores(axes[0], run, (0.0, span))
    axes[0].set_title("core state (text: services placed on the core where it changes)", fontsize=10, loc="left")
    _temperature(axes[1], run, span)
    _mode(axes[2], run, span)
    if has_power:
        _power(axes[3], run)
    if zoom:  # a long run's last minute would be a few pixels wide on the shared axis
        window = (span - ZOOM_S, span)
        axes[-1].set_xlim(*window)
        _cores(axes[-1], run, window)
        axes[-1].set_title(f"core state in the last {ZOOM_S:.0f} s, enlarged", fontsize=10, loc="left")
        axes[-1].set_xlabel("seconds since start", fontsize=10)
    counts = _markers(axes, run)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(run.start))
    timeline[-1].set_xlabel(f"seconds since start ({started})", fontsize=11)
    _legend(fig, run, counts)
    m = run.meta
    state = "" if run.ended is not None else " · INCOMPLETE: no ended_utc (kernel killed or still running)"
    fig.suptitle(
        f"{m.get('target') or 'unknown target'} — {m.get('board') or 'unknown board'}\n"
        f"run {run.run_id} · {fmt_duration(run.duration)}{state}",
        fontsize=15,
    )


def _bands(
    ax: Axes,
    row: float,
    ivs: list[tl.Interval],
    colours: dict[str, str],
    run: Run,
    window: tuple[float, float],
    label: Any,
) -> None:
    """One horizontal band of coloured intervals in ``window`` (seconds since start); ``label(value)`` gives the
    text drawn in wide ones."""
    x0, x1 = window
    span = x1 - x0
    shown = [tl.Interval(max(iv.start, run.start + x0), min(iv.end, run.start + x1), iv.value) for iv in ivs]
    shown = [iv for iv in shown if iv.end > iv.start]
    # Short intervals (a core SUSPECT for 0.7 s) are widened to MIN_WIDTH and drawn on top, so they show.
    drawn = sorted(shown, key=lambda iv: -iv.length)
    ax.broken_barh(
        [(run.rel(iv.start), max(iv.length, MIN_WIDTH * span)) for iv in drawn],
        (row - 0.4, 0.8),
        facecolors=[colours.get(iv.value, UNKNOWN_COLOUR) for iv in drawn],
        linewidth=0,
    )
    for iv in shown:
        text = label(iv.value)
        if text and iv.length > 0.05 * span:
            ax.text(
                run.rel(iv.start) + iv.length / 2,
                row + 0.18,
                text,
                ha="center",
                va="center",
                fontsize=9,
                fontweight="bold",
                color="#212121",
                clip_on=True,
            )


def _cores(ax: Axes, run: Run, window: tuple[float, float]) -> None:
    """One band per core over ``window`` (seconds since start), with ticks and labels where placement changes."""
    x0, x1 = window
    span = x1 - x0
    cores = run.cores
    for row, core in enumerate(cores):
        _bands(ax, row, tl.core_intervals(run, core), CORE_COLOURS, run, window, lambda v: "" if v == tl.HEALTHY else v)
        changes = tl.core_services(run, core)
        ax.vlines(
            [x for x in (run.rel(t) for t, _ in changes) if x0 <= x <= x1],
            row - 0.4,
            row + 0.4,
            colors="#212121",
            linewidth=0.9,
        )
        labels = tl.placement_labels(changes, run.start + x0, lambda text: (0.006 + CHAR_WIDTH * len(text)) * span)
        for t, text in labels:
            if run.rel(t) <= x1:
                ax.text(
                    run.rel(t) + 0.003 * span,
                    row - 0.34,
                    text,
                    ha="left",
                    va="top",
                    fontsize=8.5,
                    color="#102027",
                    clip_on=True,
                )
    ax.set_yticks(range(len(cores)), [f"core {c}" for c in cores], fontsize=10)
    ax.set_ylim(len(cores) - 0.5, -0.5)
    if not cores:
        _no_data(ax, "no cores recorded")


def _temperature(ax: Axes, run: Run, span: float) -> None:
    junction = [(run.rel(s.t), s.junction_c) for s in run.samples if s.junction_c is not None]
    trip = [(run.rel(s.t), s.trip_c) for s in run.samples if s.trip_c is not None]
    ax.set_ylabel("junction °C", fontsize=10)
    if not junction:
        _no_data(ax, "no junction temperature recorded")
        return
    ax.plot(*zip(*junction, strict=True), color="#e65100", linewidth=1.8, label="junction temperature")
    if trip:
        ax.step(
            *zip(*trip, strict=True), where="post", color="#b71c1c", linestyle="--", linewidth=1.5, label="trip point"
        )
        margins = [
            (s.trip_c - s.junction_c, s) for s in run.samples if s.trip_c is not None and s.junction_c is not None
        ]
        if margins:
            margin, s = min(margins, key=lambda m: m[0])
            x = run.rel(s.t)
            ax.annotate(
                "",
                xy=(x, s.trip_c),
                xytext=(x, s.junction_c),
                arrowprops={"arrowstyle": "<->", "color": "#b71c1c", "linewidth": 1.3},
            )
            right = x > 0.75 * span  # near the right edge, the text goes to the left of the arrow
            ax.text(
                x,
                ((s.trip_c or 0.0) + (s.junction_c or 0.0)) / 2,
                f"min margin {margin:.1f} °C  " if right else f"  min margin {margin:.1f} °C",
                va="center",
                ha="right" if right else "left",
                fontsize=9.5,
                color="#b71c1c",
                fontweight="bold",
            )
    ax.legend(loc="best", fontsize=9, framealpha=0.9)
    ax.set_title("junction temperature and trip point", fontsize=10, loc="left")


def _mode(ax: Axes, run: Run, span: float) -> None:
    ivs = tl.mode_intervals(run)
    _bands(ax, 0, ivs, MODE_COLOURS, run, (0.0, span), lambda v: v)
    ax.set_yticks([0], ["mode"], fontsize=10)
    ax.set_ylim(0.5, -0.5)
    if not ivs:
        _no_data(ax, "no mode recorded")


def _power(ax: Axes, run: Run) -> None:
    power = [(run.rel(s.t), s.power_w) for s in run.samples if s.power_w is not None]
    budget = [(run.rel(s.t), s.budget_w) for s in run.samples if s.budget_w is not None]
    ax.plot(*zip(*power, strict=True), color="#00838f", linewidth=1.5, label="power")
    if budget:
        ax.step(
            *zip(*budget, strict=True), where="post", color="#37474f", linestyle="--", linewidth=1.4, label="budget"
        )
    ax.set_ylabel("W", fontsize=10)
    ax.legend(loc="best", fontsize=9, framealpha=0.9)
    ax.set_title("power and budget", fontsize=10, loc="left")


def _markers(axes: Sequence[Axes], run: Run) -> dict[str, int]:
    """Vertical lines through every panel; returns how many of each kind."""
    counts = {}
    for kind, events in tl.markers(run).items():
        colour, style, width = MARKER_STYLES[kind]
        xs = [run.rel(e.t) for e in events]
        for ax in axes:
            ax.vlines(
                xs,
                0,
                1,
                transform=ax.get_xaxis_transform(),
                colors=colour,
                linestyles=style,
                linewidth=width,
                alpha=0.75,
                zorder=3,
            )
        counts[kind] = len(xs)
    for e in tl.markers(run).get("service failed", []):
        axes[1].text(
            run.rel(e.t),
            0.86,
            f" {e.data.get('service', '?')} FAILED",
            transform=axes[1].get_xaxis_transform(),
            fontsize=9.5,
            fontweight="bold",
            color=MARKER_STYLES["service failed"][0],
            clip_on=True,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1},
        )
    return counts


def _legend(fig: Figure, run: Run, counts: dict[str, int]) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [Patch(facecolor=c, label=s) for s, c in CORE_COLOURS.items()]
    if any(iv.value not in CORE_COLOURS for core in run.cores for iv in tl.core_intervals(run, core)):
        handles.append(Patch(facecolor=UNKNOWN_COLOUR, label="other state"))
    for kind, n in counts.items():
        colour, style, width = MARKER_STYLES[kind]
        handles.append(Line2D([0], [0], color=colour, linestyle=style, linewidth=width, label=f"{kind} ({n})"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=10, frameon=False)


def _no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=11, color="#757575")
