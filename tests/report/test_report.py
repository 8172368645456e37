"""``flightos report``: the timeline PNG, the HTML page and the summary of recorded runs."""

from __future__ import annotations

import base64
import json
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from flightos.report import ReportError, ReportResult, load_run, render, summarize
from flightos.report.cli import main as cli_main
from flightos.report.page import decisions

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
START = 1795000000.0
try:
    import matplotlib  # noqa: F401  (only to know whether the PNG can be drawn here)

    HAS_MATPLOTLIB = True
except ImportError:
    HAS_MATPLOTLIB = False
needs_matplotlib = pytest.mark.skipif(
    not HAS_MATPLOTLIB, reason="matplotlib is not importable: pip install 'flightos[report]' to draw the PNG"
)


def copy_run(name: str, tmp: Path) -> Path:
    """A writable copy of a fixture run, so reports are not written into the repository."""
    return Path(shutil.copytree(RUNS / name, tmp / name))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ReportResult]:
    """Each fixture run rendered once, into its own copy."""
    if not HAS_MATPLOTLIB:
        pytest.skip("matplotlib is not importable: pip install 'flightos[report]' to draw the PNG")
    tmp = tmp_path_factory.mktemp("reports")
    return {name: render(copy_run(name, tmp)) for name in ("core-failure", "crash-loop", "killed", "long-run")}


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's signature and IHDR chunk; fails on anything else."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR"), "the first chunk is not IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# ---- files and the PNG -------------------------------------------------------------------------


@needs_matplotlib
def test_render_writes_png_and_html_into_the_run_directory(rendered: dict[str, ReportResult]) -> None:
    """By default report.png and report.html appear next to the recorded run."""
    for name, result in rendered.items():
        assert result.png.name == "report.png" and result.html.name == "report.html"
        assert result.png.parent.name == name and result.html.parent == result.png.parent
        assert result.png.stat().st_size > 10_000 and result.html.stat().st_size > 10_000


@needs_matplotlib
def test_png_is_a_1600_by_1000_png(rendered: dict[str, ReportResult]) -> None:
    """Every timeline is a real PNG of 1600 x 1000 pixels, with or without a power panel."""
    for result in rendered.values():
        assert png_size(result.png.read_bytes()) == (1600, 1000)


def test_placement_skips_the_sample_taken_before_the_services_started() -> None:
    """The first sample precedes the spawns: it is no placement, so no core reads "(no services)" from t=0."""
    from flightos.report import timeline as tl

    run = load_run(RUNS / "long-run")
    assert all(not c.services for c in run.samples[0].cores)
    assert tl.core_services(run, 0)[0] == (START + 1.0, ("test",))
    assert tl.core_services(run, 3)[:2] == [(START + 1.0, ()), (START + 5.0, ("sar",))]  # sar is up at 2.4 s
    assert tl.core_services(run, 2)[0] == (START + 1.0, ())  # a core that really is empty still says so


def test_a_burst_of_placement_changes_is_labelled_where_it_settled() -> None:
    """A change that would overlap the previous label replaces its text instead of being hidden behind it."""
    from flightos.report import timeline as tl

    def width(text: str) -> float:
        return float(len(text))  # one second per character

    changes = [(0.0, ()), (1.0, ("a", "b")), (2.0, ("a", "b", "c")), (100.0, ("b",)), (103.0, ("c",))]
    settled = [(0.0, "a, b, c"), (100.0, "b"), (103.0, "c")]
    assert tl.placement_labels(changes, 0.0, width) == settled
    assert tl.placement_labels(changes, 50.0, width) == [(50.0, "a, b, c"), *settled[1:]]  # earlier: at the start
    assert tl.placement_labels([(0.0, ("a",)), (0.5, ("b",))], 0.0, width) == [(0.0, "b")]


def _texts(ax: object) -> dict[str, float]:
    """Each text drawn on the axes, with the x of its first occurrence."""
    out: dict[str, float] = {}
    for t in ax.texts:  # type: ignore[attr-defined]
        out.setdefault(t.get_text(), t.get_position()[0])
    return out


@needs_matplotlib
def test_the_timeline_names_the_real_placement_from_the_start() -> None:
    """On a 12-minute run, core 0's label at the start names its services (it once read "(no services)" until 380 s)."""
    from matplotlib.figure import Figure

    from flightos.report.plot import draw

    fig = Figure()
    draw(fig, load_run(RUNS / "long-run"))
    texts = _texts(fig.axes[0])
    assert texts["test, ground"] < 5 and texts["ground"] > 379 and texts["sar"] < 10
    assert "housekeeping, sar" in texts  # core 1 after core 3 failed
    assert texts["(no services)"] < 5  # core 2, empty until the move at 380 s


@needs_matplotlib
def test_a_long_run_gets_its_last_minute_enlarged() -> None:
    """Past LONG_RUN_S the figure ends with the core states of the last minute on an axis of their own."""
    from matplotlib.figure import Figure

    from flightos.report import timeline as tl
    from flightos.report.plot import LONG_RUN_S, ZOOM_S, draw

    fig = Figure()
    run = load_run(RUNS / "long-run")
    draw(fig, run)
    zoom = fig.axes[-1]
    assert run.duration > LONG_RUN_S and zoom.get_xlim() == (run.duration - ZOOM_S, run.duration)
    assert fig.axes[0].get_xlim() == (0.0, run.duration)
    assert [t.get_text() for t in zoom.get_yticklabels()] == ["core 0", "core 1", "core 2", "core 3"]
    texts = _texts(zoom)
    assert texts["OFFLINE"] > 681 and texts["housekeeping, sar"] > 681 and texts["sar"] == pytest.approx(660.18)
    # the 0.7 s SUSPECT spell is 1 % of the enlarged axis, against 0.1 % of the whole run
    suspect = [iv for iv in tl.core_intervals(run, 3) if iv.value == "SUSPECT"]
    assert len(suspect) == 1 and suspect[0].length / ZOOM_S > 0.01
    short = Figure()
    draw(short, load_run(RUNS / "core-failure"))  # 300 s: no extra panel (cores, temperature, mode, power)
    assert len(short.axes) == 4


@needs_matplotlib
def test_out_dir_receives_the_report_and_the_run_is_untouched(tmp_path: Path) -> None:
    """With out_dir the report goes there (created if needed) and the run directory is not written."""
    run = copy_run("killed", tmp_path)
    before = sorted(p.name for p in run.iterdir())
    result = render(run, tmp_path / "out" / "nested")
    assert result.png.parent == tmp_path / "out" / "nested"
    assert png_size(result.png.read_bytes()) == (1600, 1000)
    assert sorted(p.name for p in run.iterdir()) == before


# ---- the HTML page -------------------------------------------------------------------------------


@needs_matplotlib
def test_html_is_self_contained_with_the_png_embedded(rendered: dict[str, ReportResult]) -> None:
    """The page opens offline: the PNG is a data URI of the same image, no scripts, no external links."""
    result = rendered["core-failure"]
    page = result.html.read_text(encoding="utf-8")
    uri = re.search(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert uri is not None
    assert base64.b64decode(uri.group(1)) == result.png.read_bytes()
    assert "<script" not in page.lower()
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "<style>" in page


@needs_matplotlib
def test_html_lists_the_kernel_decisions_in_time_order(rendered: dict[str, ReportResult]) -> None:
    """The decisions table shows what the kernel did, in the order it did it, with times since start."""
    page = rendered["core-failure"].html.read_text(encoding="utf-8")
    table = page[page.index("Kernel decisions") :]
    expected = [
        "core-failure: sefi on core 2",
        "core 2: HEALTHY -&gt; SUSPECT (selftest timeout)",
        "imager silent for 600 ms",
        "imager restarts in 0.00 s",
        "core 2: SUSPECT -&gt; OFFLINE",
        "imager: cores [2] -&gt; [3]",
        "frame rejected",
        "mode NOMINAL -&gt; DEGRADED",
        "test shed in DEGRADED mode",
        "core 2: OFFLINE -&gt; HEALTHY",
        "mode DEGRADED -&gt; NOMINAL",
        "test: cores [1] -&gt; [2] (rebalance), live",
    ]
    positions = [table.index(text) for text in expected]
    assert positions == sorted(positions)
    assert '<td class="num">61.30</td>' in table
    assert "Kernel decisions (17)" in page


@needs_matplotlib
def test_html_escapes_a_script_in_a_service_message(rendered: dict[str, ReportResult]) -> None:
    """A service message containing <script> is shown as text, never run."""
    page = rendered["core-failure"].html.read_text(encoding="utf-8")
    assert "<script>alert" not in page
    assert "frame rejected: &lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt; &amp; &quot;quotes&quot;" in page


def test_decisions_are_low_or_more_plus_every_mode_migration_and_core_change() -> None:
    """Routine INFO events stay out of the table; state changes are in it even at INFO."""
    names = [e.label for e in decisions(load_run(RUNS / "core-failure"))]
    assert "SERVICE_READY" not in names and "SERVICE_PLACED" not in names and "test #1" not in names
    assert names.count("MODE_CHANGED") == 2 and names.count("SERVICE_MIGRATED") == 2
    assert names.count("CORE_STATE_CHANGED") == 3 and "imager #12" in names


@needs_matplotlib
def test_html_shows_the_summary_and_what_is_incomplete(rendered: dict[str, ReportResult]) -> None:
    """The page shows the run, its key figures, and warns when the recording was cut short."""
    page = rendered["core-failure"].html.read_text(encoding="utf-8")
    assert "SimRadHard GR740-like" in page and "20261118T110640Z-4242" in page
    assert "3 min 10 s" in page and "1 min 50 s" in page  # NOMINAL and DEGRADED time
    assert "max 84.0 °C" in page and "smallest margin 11.0 °C" in page
    assert "The recording is incomplete" not in page
    killed = rendered["killed"].html.read_text(encoding="utf-8")
    assert "The recording is incomplete" in killed and "truncated" in killed
    assert "no <code>ended_utc</code>" in killed
    failed = rendered["crash-loop"].html.read_text(encoding="utf-8")
    assert "test FAILED: more than 5 restarts in 600 s" in failed


# ---- the summary -------------------------------------------------------------------------------


def test_summary_of_a_core_failure() -> None:
    """Restarts, migrations, time per mode, thermal margin and the unhealthy core are counted right."""
    s = summarize(load_run(RUNS / "core-failure"))
    assert s["duration_s"] == 300.0 and s["complete"] is True
    assert s["restarts"] == {"housekeeping": 0, "test": 0, "imager": 1}
    assert (s["migrations"]["count"], s["migrations"]["with_restart"], s["migrations"]["without_restart"]) == (2, 1, 1)
    assert [m["service"] for m in s["migrations"]["list"]] == ["imager", "test"]
    assert s["mode_time_s"] == {"NOMINAL": 190.0, "DEGRADED": 110.0}
    assert [(c["at_s"], c["old"], c["new"]) for c in s["mode_changes"]] == [
        (90.0, "NOMINAL", "DEGRADED"),
        (200.0, "DEGRADED", "NOMINAL"),
    ]
    assert s["thermal"] == {
        "max_junction_c": 84.0,
        "max_junction_at_s": 170.5,
        "trip_c": 95.0,
        "min_margin_c": 11.0,
        "min_margin_at_s": 170.5,
    }
    assert s["power"] == {"max_w": 3.2, "max_at_s": 150.5, "budget_w": 3.0, "samples_over_budget": 3}
    assert s["cores_left_healthy"] == [
        {
            "core": 2,
            "at_s": 60.5,
            "states": ["SUSPECT", "OFFLINE"],
            "reason": "selftest timeout",
            "healthy_again_at_s": 180.4,
        }
    ]
    assert s["failed_services"] == []
    assert s["events_by_severity"] == {"INFO": 23, "LOW": 8, "MEDIUM": 6, "HIGH": 0}
    json.dumps(s)  # the summary is plain JSON


def test_summary_of_a_crash_loop_to_failed() -> None:
    """Five restarts then FAILED; with no MODE_CHANGED the mode time comes from telemetry."""
    s = summarize(load_run(RUNS / "crash-loop"))
    assert s["restarts"] == {"housekeeping": 0, "test": 5}
    assert s["failed_services"] == [
        {"service": "test", "at_s": 25.251, "message": "test FAILED: more than 5 restarts in 600 s"}
    ]
    assert s["mode_time_s"] == {"NOMINAL": 60.0} and s["mode_changes"] == []
    assert s["migrations"]["count"] == 0 and s["cores_left_healthy"] == []
    assert s["events_by_severity"]["HIGH"] == 1
    assert s["power"]["max_w"] is None


def test_summary_of_a_killed_run() -> None:
    """No ended_utc: the run lasts until its last record and is marked incomplete."""
    s = summarize(load_run(RUNS / "killed"))
    assert s["ended_utc"] is None and s["complete"] is False
    assert s["duration_s"] == 14.8
    assert s["mode_time_s"] == {"NOMINAL": 9.0, "SAFE": 5.8}
    assert s["cores_left_healthy"] == [
        {
            "core": 1,
            "at_s": 12.0,
            "states": ["DEGRADED"],
            "reason": "EDAC uncorrectable errors",
            "healthy_again_at_s": None,
        }
    ]


# ---- damaged and missing recordings ------------------------------------------------------------


def test_malformed_lines_are_skipped_and_counted() -> None:
    """Garbage lines in the logs are counted and named by line number; the rest of the run is read."""
    run = load_run(RUNS / "crash-loop")
    assert run.skipped_lines == 4
    assert len(run.events) == 32 and len(run.samples) == 120
    assert "events.jsonl: 3 malformed line(s) skipped (line 11, 12, 13)" in run.problems
    assert "telemetry.jsonl: 1 malformed line(s) skipped (line 31)" in run.problems


def test_a_truncated_last_line_is_reported_as_truncated() -> None:
    """A kernel killed mid-write leaves half a line: it is skipped and called truncated."""
    run = load_run(RUNS / "killed")
    assert run.skipped_lines == 2 and run.ended is None
    assert all("truncated" in p for p in run.problems) and len(run.problems) == 2
    assert run.events[-1].name == "THROTTLE_CHANGED"


def test_a_recording_that_stops_before_the_run_ends_is_flagged(tmp_path: Path) -> None:
    """When telemetry stops long before ended_utc (size cap, disk full), the report says so."""
    run = copy_run("crash-loop", tmp_path)
    meta = json.loads((run / "meta.json").read_text())
    meta["ended_utc"] = START + 300.0
    (run / "meta.json").write_text(json.dumps(meta))
    assert any("telemetry.jsonl stops 240 s before the end" in p for p in load_run(run).problems)
    assert not any("stops" in p for p in load_run(RUNS / "crash-loop").problems)


def test_missing_events_file_is_a_clear_error(tmp_path: Path) -> None:
    """Without events.jsonl the report refuses, naming the file."""
    run = copy_run("core-failure", tmp_path)
    (run / "events.jsonl").unlink()
    with pytest.raises(ReportError, match=r"events\.jsonl: missing"):
        load_run(run)
    with pytest.raises(ReportError, match=r"events\.jsonl"):
        render(run)


def test_missing_run_directory_is_a_clear_error(tmp_path: Path) -> None:
    """A mistyped run path says there is no such run directory."""
    with pytest.raises(ReportError, match="no such directory"):
        load_run(tmp_path / "nope")


@needs_matplotlib
def test_missing_telemetry_still_gives_a_report_from_the_events(tmp_path: Path) -> None:
    """A run killed before its first sample is still reported, from events, with a warning."""
    run = copy_run("core-failure", tmp_path)
    (run / "telemetry.jsonl").unlink()
    result = render(run)
    s = result.summary
    assert s["missing_files"] == ["telemetry.jsonl"]
    assert s["mode_time_s"] == {"NOMINAL": 190.0, "DEGRADED": 110.0}
    assert s["cores_left_healthy"][0]["core"] == 2 and s["thermal"]["max_junction_c"] is None
    assert png_size(result.png.read_bytes()) == (1600, 1000)
    assert "telemetry.jsonl is missing" in result.html.read_text(encoding="utf-8")


@needs_matplotlib
def test_a_run_killed_at_start_renders_an_empty_timeline(tmp_path: Path) -> None:
    """Only meta.json and an empty event log: a report, not a crash."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "meta.json").write_text(
        json.dumps({"run_id": "r1", "started_utc": START, "ended_utc": None, "cores": [0, 1], "target": "linux"})
    )
    (run / "events.jsonl").write_text("")
    result = render(run)
    assert result.summary["duration_s"] == 0.0 and result.summary["events"] == 0
    assert png_size(result.png.read_bytes()) == (1600, 1000)


@needs_matplotlib
def test_wrongly_typed_fields_do_not_crash(tmp_path: Path) -> None:
    """Odd values from a future or buggy kernel are ignored field by field, not fatal."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "meta.json").write_text(
        json.dumps(
            {"cores": "abc", "services": 5, "started_utc": "x", "ended_utc": True, "target": ["x"], "board": None}
        )
    )
    events = [
        {
            "t": START + 1,
            "severity": 3,
            "severity_name": "MEDIUM",
            "name": "CORE_STATE_CHANGED",
            "data": {"core": 0, "old": "HEALTHY", "new": "hung"},
            "message": None,
        },
        {"t": START + 2, "severity": 99, "name": "MODE_CHANGED", "data": ["not", "a", "dict"]},
        {"t": START + 3, "severity": "CRITICAL", "topic": "ev.x", "id": True, "message": "<b>"},
        {"t": "soon"},
        {"t": float("nan")},
        {"t": START + 4, "name": "SERVICE_MIGRATED", "data": {}},
    ]
    (run / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    samples = [
        {
            "t": START + 0.5,
            "cores": [{"id": 0, "state": 7, "services": "imager"}, {"id": "x"}, 3],
            "services": [{"name": 1, "restarts": "many"}],
            "mode": 5,
            "junction_c": "hot",
        },
        {"t": START + 1.5, "cores": 5},
    ]
    (run / "telemetry.jsonl").write_text("\n".join(json.dumps(s) for s in samples) + "\n")
    result = render(run)
    s = result.summary
    assert s["skipped_lines"] == 2 and s["samples"] == 2  # "soon" and NaN; cores=5 reads as no cores
    assert s["events_by_severity"]["MEDIUM"] == 1 and s["events_by_severity"]["CRITICAL"] == 1
    assert s["cores"] == [0] and s["cores_left_healthy"][0]["states"] == ["HUNG"]
    assert png_size(result.png.read_bytes()) == (1600, 1000)
    assert "&lt;b&gt;" in result.html.read_text(encoding="utf-8")  # unknown severity: shown as a decision


def test_the_kernels_numeric_severity_is_understood(tmp_path: Path) -> None:
    """Events as the kernel publishes them today (severity 1..4 plus severity_name) are read alike."""
    run = tmp_path / "run"
    run.mkdir()
    lines = [
        {
            "t": START + 1,
            "topic": "ev.kernel",
            "source": "kernel",
            "id": 1106,
            "name": "SERVICE_FAILED",
            "severity": 4,
            "severity_name": "HIGH",
            "message": "x FAILED",
            "data": {"service": "x"},
        },
        {
            "t": START + 2,
            "topic": "ev.kernel",
            "id": 1105,
            "name": "SERVICE_RESTART_SCHEDULED",
            "severity": 2,
            "message": "",
            "data": {"service": "x"},
        },
    ]
    (run / "events.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    s = summarize(load_run(run))
    assert s["events_by_severity"] == {"INFO": 0, "LOW": 1, "MEDIUM": 0, "HIGH": 1}
    assert s["restarts"] == {"x": 1} and s["failed_services"][0]["service"] == "x"
    assert s["missing_files"] == ["meta.json", "telemetry.jsonl"] and s["started_utc"] == START + 1


# ---- packaging and the command line ------------------------------------------------------------


def test_missing_matplotlib_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without matplotlib, render says exactly what to install (and writes nothing)."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    run = copy_run("killed", tmp_path)
    with pytest.raises(ReportError) as info:
        render(run)
    assert str(info.value) == "matplotlib is not installed: pip install 'flightos[report]'"
    assert not (run / "report.png").exists() and not (run / "report.html").exists()


def test_importing_flightos_does_not_import_matplotlib() -> None:
    """flightos and flightos.report import (and summarize) without loading matplotlib."""
    code = (
        "import sys, flightos, flightos.report as r; "
        f"r.summarize(r.load_run({str(RUNS / 'core-failure')!r})); "
        "sys.exit('matplotlib' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0


@needs_matplotlib
def test_command_line_prints_where_the_report_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """python -m flightos.report RUN prints the files and warnings; a bad run exits 1 with the reason."""
    run = copy_run("killed", tmp_path)
    with pytest.raises(SystemExit) as ok:
        cli_main([str(run), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert ok.value.code == 0 and "(incomplete)" in out and str(tmp_path / "out" / "report.html") in out
    assert "warning: events.jsonl" in out
    (run / "events.jsonl").unlink()
    with pytest.raises(SystemExit) as bad:
        cli_main([str(run)])
    assert bad.value.code == 1 and "events.jsonl: missing" in capsys.readouterr().err
