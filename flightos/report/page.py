"""The report as one self-contained HTML file: summary, the PNG as a data URI, the kernel's decisions.

Every text from the run is escaped: messages and names come from services.
"""

from __future__ import annotations

import base64
import time
from html import escape
from typing import Any

from flightos.report.model import SEVERITIES, Event, Run, fmt_duration

#: Shown at any severity; everything else from LOW up.
DECISION_NAMES = frozenset({"MODE_CHANGED", "SERVICE_MIGRATED", "CORE_STATE_CHANGED"})

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1640px;
 padding:0 20px;color:#212121}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:16px 0 6px}.sub{color:#555;margin:0 0 12px}code{font-size:13px}
.warn{background:#fff8e1;border:1px solid #ffca28;padding:8px 14px;border-radius:4px;margin:12px 0}
.warn ul{margin:4px 0;padding-left:20px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px}.card h3{margin:0 0 4px;color:#555}
.big{font-size:22px;font-weight:600}
table{border-collapse:collapse;width:100%;font-size:14px}th,td{text-align:left;padding:3px 8px;
 border-bottom:1px solid #eee;vertical-align:top}th{background:#f5f5f5}td.num{text-align:right;
 font-variant-numeric:tabular-nums;white-space:nowrap}.card table{font-size:13px}
.sev{font-weight:600;font-size:12px;padding:1px 6px;border-radius:3px;white-space:nowrap}
.sev-INFO{background:#e3f2fd}.sev-LOW{background:#fff9c4}.sev-MEDIUM{background:#ffe0b2}
.sev-HIGH{background:#ffcdd2}.sev-other{background:#eceff1}
img{max-width:100%;height:auto;border:1px solid #ddd}.muted{color:#777}
"""


def decisions(run: Run) -> list[Event]:
    """Events with severity LOW or more, and every mode, migration and core-state change, in time order."""
    return [e for e in run.events if e.rank >= 2 or e.name in DECISION_NAMES]


def _t(run: Run, t: float) -> str:
    return f"{run.rel(t):.2f}"


def _utc(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t)) if t is not None else "—"


def _table(headers: list[str], rows: list[list[str]], num: frozenset[int] = frozenset()) -> str:
    """Cells are already-escaped HTML."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _card(title: str, body: str) -> str:
    return f'<div class="card"><h3>{escape(title)}</h3>{body}</div>'


def _v(v: Any, unit: str = "") -> str:
    return "—" if v is None else escape(f"{v}{unit}")


def _cards(s: dict[str, Any]) -> str:
    mig = s["migrations"]
    th = s["thermal"]
    pw = s["power"]
    restarts = (
        _table(["service", "restarts"], [[escape(k), str(v)] for k, v in s["restarts"].items()], frozenset({1}))
        if s["restarts"]
        else '<p class="muted">no services</p>'
    )
    modes = (
        _table(
            ["mode", "time"],
            [[escape(k), escape(fmt_duration(v))] for k, v in s["mode_time_s"].items()],
            frozenset({1}),
        )
        if s["mode_time_s"]
        else '<p class="muted">no mode recorded</p>'
    )
    sev = _table(
        ["severity", "events"],
        [[f'<span class="sev {_sev_class(k)}">{escape(k)}</span>', str(v)] for k, v in s["events_by_severity"].items()],
        frozenset({1}),
    )
    cards = [
        _card(
            "Duration",
            f'<div class="big">{escape(fmt_duration(s["duration_s"] or 0.0))}</div>'
            + (
                ""
                if s["complete"]
                else "<div>incomplete: no <code>ended_utc</code> (the kernel was killed or is still running)</div>"
            ),
        ),
        _card("Restarts", restarts),
        _card(
            "Migrations",
            f'<div class="big">{mig["count"]}</div>{mig["with_restart"]} with restart, '
            f"{mig['without_restart']} without",
        ),
        _card("Time in each mode", modes),
        _card(
            "Junction temperature",
            f'<div class="big">max {_v(th["max_junction_c"], " °C")}</div>'
            f"at {_v(th['max_junction_at_s'], ' s')}; trip {_v(th['trip_c'], ' °C')}; "
            f"smallest margin {_v(th['min_margin_c'], ' °C')} at {_v(th['min_margin_at_s'], ' s')}",
        ),
        _card(
            "Power",
            f'<div class="big">max {_v(pw["max_w"], " W")}</div>budget {_v(pw["budget_w"], " W")}; '
            f"{pw['samples_over_budget']} sample(s) over budget",
        ),
        _card("Events by severity", sev),
    ]
    return '<div class="grid">' + "".join(cards) + "</div>"


def _sev_class(sev: str) -> str:
    return f"sev-{sev}" if sev in SEVERITIES else "sev-other"


def html_page(run: Run, summary: dict[str, Any], png: bytes) -> str:
    """The whole page."""
    s = summary
    title = f"{s.get('target') or 'unknown target'} — {s.get('board') or 'unknown board'}"
    sub = " · ".join(
        escape(str(x))
        for x in (
            f"run {s['run_id']}",
            f"backend {s.get('backend') or '?'}",
            f"scenario {s.get('scenario') or 'none'}",
            f"flightos {s.get('flightos_version') or '?'}",
            f"{_utc(s['started_utc'])} → {_utc(s['ended_utc'])}",
            fmt_duration(s["duration_s"] or 0.0),
        )
    )
    parts = [f"<h1>{escape(title)}</h1>", f'<p class="sub">{sub}</p>']
    if s["problems"]:
        items = "".join(f"<li>{escape(p)}</li>" for p in s["problems"])
        parts.append(f'<div class="warn"><strong>The recording is incomplete.</strong><ul>{items}</ul></div>')
    parts += ["<h2>Summary</h2>", _cards(s)]
    left = s["cores_left_healthy"]
    parts.append(
        "<h3>Cores that left HEALTHY</h3>"
        + (
            _table(
                ["core", "left at (s)", "states", "reason", "healthy again at (s)"],
                [
                    [
                        str(c["core"]),
                        _v(c["at_s"]),
                        escape(" → ".join(c["states"])),
                        escape(c["reason"]),
                        _v(c["healthy_again_at_s"]) if c["healthy_again_at_s"] is not None else "not during the run",
                    ]
                    for c in left
                ],
                frozenset({1, 4}),
            )
            if left
            else '<p class="muted">every core stayed HEALTHY</p>'
        )
    )
    failed = s["failed_services"]
    parts.append(
        "<h3>Failed services</h3>"
        + (
            _table(
                ["service", "at (s)", "message"],
                [[escape(f["service"]), _v(f["at_s"]), escape(f["message"])] for f in failed],
                frozenset({1}),
            )
            if failed
            else '<p class="muted">none</p>'
        )
    )
    b64 = base64.b64encode(png).decode("ascii")
    parts += [
        "<h2>Timeline</h2>",
        f'<img src="data:image/png;base64,{b64}" alt="{escape("timeline of run " + s["run_id"])}">',
    ]
    rows = [
        [
            _t(run, e.t),
            f'<span class="sev {_sev_class(e.severity)}">{escape(e.severity)}</span>',
            escape(e.source),
            escape(e.label),
            escape(e.message),
        ]
        for e in decisions(run)
    ]
    parts += [
        f"<h2>Kernel decisions ({len(rows)})</h2>",
        '<p class="muted">Events of severity LOW and above, from the kernel and from services, and every '
        "mode change, migration and core state change. Time in seconds since the start of the run.</p>",
        _table(["t (s)", "severity", "source", "event", "message"], rows, frozenset({0})),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape('flightos report: ' + title + ' · ' + s['run_id'])}</title>"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
