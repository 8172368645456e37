"""The jobs service in a real runtime: budgets, the ledger, tenants, modes, inference and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from flightos import CommandError
from flightos.bus.envelope import Envelope
from flightos.bus.pubsub import Subscriber
from flightos.client import Client
from flightos.testing import RuntimeProcess, eventually
from services.jobs.events import JobsEvent
from tests.jobs.conftest import jobs_runtime

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shared_rt(plugin_env: dict[str, str]) -> Iterator[RuntimeProcess]:
    """One runtime with the jobs service for the tests that change no mode."""
    rt = jobs_runtime(plugin_env)
    try:
        rt.start_sync()
        yield rt
    finally:
        rt.stop_sync()
        rt.cleanup()


@pytest_asyncio.fixture
async def c(shared_rt: RuntimeProcess) -> AsyncIterator[Client]:
    client = Client(shared_rt.runtime_dir, name="test")
    try:
        yield client
    finally:
        client.close()


async def finished(c: Client, job_id: str, tenant: str, timeout: float = 20.0) -> dict[str, Any]:
    """Poll ``result`` until the job is in a final state."""
    res: dict[str, Any] = await eventually(
        lambda: c.call("jobs", "result", {"job_id": job_id, "tenant": tenant}),
        until=lambda r: r["state"] not in ("queued", "running"),
        timeout=timeout,
        what=f"job {job_id} to end",
    )
    return res


async def next_batch(sub: Subscriber, wait_s: float = 0.5) -> list[Envelope]:
    """The next batch of messages, or none if nothing arrives within ``wait_s`` (eventually() asks again)."""
    try:
        return await asyncio.wait_for(sub.batches(), wait_s)
    except asyncio.TimeoutError:
        return []


async def submit(
    c: Client,
    tenant: str,
    processor: str = "test.spin",
    params: dict[str, Any] | None = None,
    inputs: list[str] | None = None,
    budget: dict[str, Any] | None = None,
) -> dict[str, Any]:
    job: dict[str, Any] = await c.call(
        "jobs",
        "submit",
        {
            "processor": processor,
            "params": params or {},
            "inputs": inputs or [],
            "budget": budget or {},
            "tenant": tenant,
        },
    )
    return job


async def test_over_budget_jobs_are_stopped_with_partial_results(c: Client) -> None:
    """CPU and deadline budgets stop a job; partial results kept and marked; an event and tm.jobs.done say why."""
    events = c.subscriber("ev.jobs", "tm.jobs.done")
    await asyncio.sleep(0)  # the subscription travels while the job starts
    job = await submit(c, "ob", params={"seconds": 30}, budget={"cpu_s": 0.5})
    res = await finished(c, job["id"], "ob")
    assert res["state"] == "over_budget" and res["exceeded"] == "cpu_s" and res["partial"] is True
    assert res["reason"].startswith("cpu_s:") and res["result"]["spun_s"] > 0
    assert 0.5 < res["cpu_s"] < 1.0
    late = await submit(c, "ob", params={"seconds": 0.05, "sleep_s": 30}, budget={"deadline_s": 1.0})
    res = await finished(c, late["id"], "ob")
    assert res["state"] == "over_budget" and res["exceeded"] == "deadline_s" and res["partial"] is True
    seen: dict[str, set[str]] = {}

    async def topics_of_late_job() -> set[str]:
        for env in await next_batch(events):
            jid = env.payload["data"]["job_id"] if env.topic == "ev.jobs" else env.payload["id"]
            seen.setdefault(jid, set()).add(env.topic)
            if env.topic == "ev.jobs" and jid == late["id"] and env.payload["data"]["state"] == "over_budget":
                assert env.payload["id"] == JobsEvent.JOB_OVER_BUDGET and "deadline_s" in env.payload["message"]
        return seen.get(late["id"], set())

    topics = await eventually(
        topics_of_late_job,
        until=lambda t: len(t) >= 2,
        timeout=5,
        interval=0,
        what="the late job's ev.jobs event and tm.jobs.done",
    )
    assert topics == {"ev.jobs", "tm.jobs.done"}


async def test_ledger_totals_equal_the_metered_jobs(c: Client) -> None:
    """Per-tenant totals over the bus equal the sums of the ledger's job rows; tm.jobs.status agrees."""
    ids = [(await submit(c, t, params={"seconds": 0.2}))["id"] for t in ("led1", "led2", "led1")]
    ids.append((await submit(c, "led2", params={"seconds": 10}, budget={"cpu_s": 0.3}))["id"])
    for jid, t in zip(ids, ("led1", "led2", "led1", "led2"), strict=True):
        await finished(c, jid, t)
    led = await c.call("jobs", "ledger")
    assert led["complete"]
    for t in ("led1", "led2"):
        rows = [r for r in led["jobs"] if r["tenant"] == t]
        assert len(rows) == 2
        for key in ("cpu_s", "energy_mj", "downlink_bytes", "wall_s"):
            assert led["tenants"][t][key] == pytest.approx(sum(r[key] for r in rows), abs=1e-9)
            assert all(r[key] >= 0 for r in rows)
        assert all(r["energy_mj"] > 0 and r["cpu_s"] > 0 for r in rows), "every job was metered"
    for key in ("cpu_s", "energy_mj", "wall_s"):
        assert led["total"][key] == pytest.approx(sum(r[key] for r in led["jobs"]), abs=1e-9)
    one = await c.call("jobs", "ledger", {"tenant": "led1"})
    assert set(one["tenants"]) == {"led1"} and one["total"]["cpu_s"] == pytest.approx(led["tenants"]["led1"]["cpu_s"])
    status = await c.wait_for("tm.jobs.status", lambda e: "led2" in e.payload["tenants"], timeout=5)
    assert status.payload["tenants"]["led2"]["cpu_s"] == pytest.approx(led["tenants"]["led2"]["cpu_s"], abs=1e-6)
    assert status.payload["mode"] == "NOMINAL" and status.payload["paused"] is None


async def test_a_tenant_cannot_read_another_tenants_results_or_inputs(c: Client) -> None:
    """Results, cancel and inputs of another tenant are out of reach, with typed errors."""
    await c.call("jobs", "put", {"tenant": "alice", "name": "scene.bin", "data": b"alice's scene"})
    job = await submit(c, "alice", params={"seconds": 0.1}, inputs=["scene.bin"])
    assert (await finished(c, job["id"], "alice"))["state"] == "done"
    for cmd in ("result", "cancel"):
        with pytest.raises(CommandError) as info:
            await c.call("jobs", cmd, {"job_id": job["id"], "tenant": "mallory"})
        assert info.value.code == "unknown_job" and "for tenant 'mallory'" in info.value.message
    for name in ("../alice/scene.bin", "/etc/passwd"):
        with pytest.raises(CommandError) as info:
            await submit(c, "mallory", inputs=[name])
        assert info.value.code == "outside_store"
        with pytest.raises(CommandError) as info:
            await c.call("jobs", "put", {"tenant": "mallory", "name": name, "data": b"x"})
        assert info.value.code == "outside_store"
    assert await c.call("jobs", "list", {"tenant": "mallory"}) == []
    assert await c.call("jobs", "files", {"tenant": "mallory"}) == []
    with pytest.raises(CommandError) as info:
        await submit(c, "mallory", processor="no.such")
    assert info.value.code == "unknown_processor"


async def test_inference_job_over_the_bus(c: Client) -> None:
    """A model and an array put into the store over the bus; the job's outputs equal numpy's."""
    pytest.importorskip("onnxruntime")
    from tests.jobs.test_inference import expected, np, npy, tiny_model

    x = np.random.default_rng(11).normal(size=(500, 4)).astype(np.float32)
    await c.call("jobs", "put", {"tenant": "inf", "name": "tiny.onnx", "data": tiny_model()})
    await c.call("jobs", "put", {"tenant": "inf", "name": "x.npy", "data": npy(x)})
    job = await submit(c, "inf", "inference.run", {"memory_mb": 0.005}, ["tiny.onnx", "x.npy"], {"cpu_s": 20})
    res = await finished(c, job["id"], "inf", timeout=30)
    assert res["state"] == "done", res
    y = np.load(next(f["path"] for f in res["files"] if f["name"] == "y.npy"))
    np.testing.assert_allclose(y, expected(x), rtol=1e-5, atol=1e-6)
    assert res["result"]["count"] == 500 and res["result"]["batches"] > 1
    assert res["per_item"]["energy_mj"] > 0 and res["result"]["latency_ms"]["p95"] > 0


async def test_degraded_mode_holds_new_jobs_with_the_reason(plugin_env: dict[str, str]) -> None:
    """In DEGRADED, a new job waits (the reason says DEGRADED); back in NOMINAL it runs."""
    async with jobs_runtime(plugin_env) as rt:
        c = rt.client
        assert c is not None
        await c.call("kernel", "mode", {"mode": "degraded"})
        await c.wait_for("tm.jobs.status", lambda e: e.payload["mode"] == "DEGRADED", timeout=5)
        job = await submit(c, "deg", params={"seconds": 0.1})
        assert job["state"] == "queued" and "DEGRADED" in job["waiting"]
        listed = await c.call("jobs", "list", {"tenant": "deg"})
        assert listed[0]["state"] == "queued" and "DEGRADED" in listed[0]["waiting"]
        status = await c.wait_for("tm.jobs.status", lambda e: e.payload["queued"] == 1, timeout=5)
        assert "DEGRADED" in status.payload["paused"] and status.payload["throttle"] >= 1
        await c.call("kernel", "mode", {"mode": "auto"})
        res = await finished(c, job["id"], "deg")
        assert res["state"] == "done" and res["started_at"] > job["submitted_at"]


async def test_safe_mode_stops_running_jobs_and_marks_them(plugin_env: dict[str, str]) -> None:
    """SAFE sheds the (elastic) jobs service: its running job is stopped and marked, partial kept;
    commands get service_unavailable with the kernel's reason; the job's record survives."""
    async with jobs_runtime(plugin_env) as rt:
        c = rt.client
        assert c is not None
        job = await submit(c, "safe", params={"seconds": 60})
        await eventually(
            lambda: c.call("jobs", "result", {"job_id": job["id"], "tenant": "safe"}),
            until=lambda r: r["progress"] is not None,
            timeout=10,
            what="the job to checkpoint",
        )
        await c.call("kernel", "mode", {"mode": "safe"})
        await rt.wait_until(
            lambda st: next(s for s in st["services"] if s["name"] == "jobs")["state"] == "STOPPED",
            timeout=10,
            what="jobs shed",
        )
        with pytest.raises(CommandError) as info:
            await submit(c, "safe")
        assert info.value.code == "service_unavailable" and "SAFE" in info.value.message
        await c.call("kernel", "mode", {"mode": "auto"})
        await rt.wait_ready("jobs", timeout=15)
        res = await c.call("jobs", "result", {"job_id": job["id"], "tenant": "safe"})
        assert res["state"] == "stopped" and "SAFE mode" in res["reason"], res
        assert res["partial"] is True and res["result"]["spun_s"] > 0


def cli(rt: RuntimeProcess, plugin_env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **plugin_env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), plugin_env.get("PYTHONPATH", "")])),
    }
    return subprocess.run(
        [sys.executable, "-m", "tests.jobs.jobs_cli", "--runtime-dir", str(rt.runtime_dir), *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli(shared_rt: RuntimeProcess, plugin_env: dict[str, str], tmp_path: Path) -> None:
    """flightos jobs submit|list|result|cancel|ledger|put|files: outputs, exit codes, one-line errors."""
    ok = cli(
        shared_rt,
        plugin_env,
        "jobs",
        "submit",
        "test.spin",
        "seconds=0.1",
        "--tenant",
        "cli",
        "--wait",
        "--timeout",
        "20",
    )
    assert ok.returncode == 0, ok.stderr
    assert " done (test.spin for cli)" in ok.stdout and "result: {" in ok.stdout
    over = cli(
        shared_rt,
        plugin_env,
        "jobs",
        "submit",
        "test.spin",
        "seconds=30",
        "--cpu-s",
        "0.3",
        "--tenant",
        "cli",
        "--wait",
    )
    assert over.returncode == 1 and "over_budget" in over.stdout and "partial result:" in over.stdout
    rows = json.loads(cli(shared_rt, plugin_env, "--json", "jobs", "list", "--tenant", "cli").stdout)
    assert [r["state"] for r in rows] == ["done", "over_budget"]
    bad = cli(shared_rt, plugin_env, "jobs", "result", rows[0]["id"], "--tenant", "eve")
    assert bad.returncode == 1 and bad.stderr.startswith("flightos: unknown_job: no job")
    assert len(bad.stderr.strip().splitlines()) == 1
    started = json.loads(
        cli(shared_rt, plugin_env, "--json", "jobs", "submit", "test.spin", "seconds=60", "--tenant", "cli").stdout
    )
    cancel = cli(shared_rt, plugin_env, "jobs", "cancel", started["id"], "--tenant", "cli")
    assert cancel.returncode == 0 and started["id"] in cancel.stdout
    led = cli(shared_rt, plugin_env, "jobs", "ledger", "--tenant", "cli", "--jobs")
    assert led.returncode == 0 and "TOTAL" in led.stdout and rows[0]["id"] in led.stdout
    src = tmp_path / "in.bin"
    src.write_bytes(b"\x01" * (3 << 20))  # over the 1 MiB frame limit: the CLI sends it in parts
    assert cli(shared_rt, plugin_env, "jobs", "put", "in.bin", str(src), "--tenant", "cli").returncode == 0
    files = json.loads(cli(shared_rt, plugin_env, "--json", "jobs", "files", "--tenant", "cli").stdout)
    assert files == [{"name": "in.bin", "bytes": 3 << 20}]
    refused = cli(shared_rt, plugin_env, "jobs", "submit", "test.spin", "--input", "../x", "--tenant", "cli")
    assert refused.returncode == 1 and refused.stderr.startswith("flightos: outside_store:")
    usage = cli(shared_rt, plugin_env, "jobs", "submit", "test.spin", "oops")
    assert usage.returncode == 2 and "expected KEY=VALUE" in usage.stderr
    procs = cli(shared_rt, plugin_env, "jobs", "processors")
    assert "test.spin" in procs.stdout and "inference.run" in procs.stdout
    nort = subprocess.run(
        [sys.executable, "-m", "tests.jobs.jobs_cli", "--runtime-dir", str(tmp_path / "none"), "jobs", "list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert nort.returncode == 3 and nort.stderr.startswith("flightos: no flightos runtime")


async def test_downlink_files_and_records_go_to_the_ground_link(c: Client) -> None:
    """A finished job's record and its downlink files (in 32 KiB chunks, within budget) are products on dl.jobs."""
    sub = c.subscriber("dl.jobs.")
    await asyncio.sleep(0)
    job = await submit(c, "dl", params={"seconds": 0.05, "downlink_bytes": 70_000}, budget={"downlink_bytes": 80_000})
    res = await finished(c, job["id"], "dl")
    assert res["state"] == "done" and res["downlink_bytes"] == 70_000
    record: dict[str, Any] | None = None
    chunks: list[dict[str, Any]] = []

    async def downlinked() -> int:
        nonlocal record
        for env in await next_batch(sub):
            p = env.payload["data"]
            if p.get("id") == job["id"] and env.topic == "dl.jobs.job":
                record = p
            elif p.get("job_id") == job["id"]:
                chunks.append(p)
            assert env.payload["priority"] == 3
        return sum(len(ch["data"]) for ch in chunks) if record is not None else -1

    await eventually(
        downlinked,
        until=lambda n: n >= 70_000,
        timeout=10,
        interval=0,
        what="the job's record and 70,000 bytes of chunks on dl.jobs",
    )
    assert record is not None and record["state"] == "done" and record["downlink"]["bytes"] == 70_000
    assert [ch["offset"] for ch in chunks] == [0, 32768, 65536] and {ch["file"] for ch in chunks} == {"spin.bin"}
    assert b"".join(ch["data"] for ch in chunks) == b"\xa5" * 70_000
