"""Budgets, metering formulas, the ledger, the mode policy and the tenant store, without processes."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from flightos import BadArguments
from services.inference import batch_size
from services.jobs import policy
from services.jobs.budget import DEFAULTS, Budget, Usage, energy_increment_mj, over_budget
from services.jobs.errors import JobRefused, OutsideStore
from services.jobs.ledger import Job, Ledger
from services.jobs.store import TenantStore, check_tenant


def test_budget_defaults_and_checks() -> None:
    """Missing keys take defaults; every bad key is named in one bad_arguments error."""
    b = Budget.parse({"cpu_s": 2})
    assert b.cpu_s == 2.0 and b.deadline_s == DEFAULTS["deadline_s"] and b.downlink_bytes == DEFAULTS["downlink_bytes"]
    assert Budget.parse({"downlink_bytes": 0}).downlink_bytes == 0, "no downlink at all is a valid budget"
    with pytest.raises(BadArguments) as info:
        Budget.parse({"cpu_s": -1, "energy_mj": True, "deadline_s": 1e9, "ram_mb": 5})
    text = str(info.value)
    for word in ("cpu_s", "energy_mj", "deadline_s", "over this service's limit", "ram_mb"):
        assert word in text
    assert Budget.parse({}, defaults={"cpu_s": 5}).cpu_s == 5
    with pytest.raises(BadArguments, match="limit of 10"):
        Budget.parse({"cpu_s": 11}, limits={"cpu_s": 10})


def test_over_budget_names_the_budget() -> None:
    """The reason starts with the budget's key and gives used against allowed."""
    b = Budget(cpu_s=1.0, energy_mj=100.0, downlink_bytes=10, deadline_s=5.0)
    assert over_budget(b, Usage(cpu_s=0.5, energy_mj=50, downlink_bytes=10), 1.0) is None
    key, why = over_budget(b, Usage(cpu_s=1.2), 1.0) or ("", "")
    assert key == "cpu_s" and why.startswith("cpu_s: 1.200 CPU-s used, budget 1 CPU-s")
    assert (over_budget(b, Usage(energy_mj=101), 1.0) or ("",))[0] == "energy_mj"
    assert (over_budget(b, Usage(downlink_bytes=11), 1.0) or ("",))[0] == "downlink_bytes"
    assert (over_budget(b, Usage(cpu_s=9), 6.0) or ("",))[0] == "deadline_s", "the deadline is checked first"


def test_energy_formula() -> None:
    """energy_mj = power_w x cpu_delta_s / n_cpus x 1000: one of two CPUs for 1 s at 4 W is 2000 mJ."""
    assert energy_increment_mj(4.0, 1.0, 2) == pytest.approx(2000.0)
    assert energy_increment_mj(4.0, 0.5, 1) == pytest.approx(2000.0)
    assert energy_increment_mj(4.0, -1.0, 2) == 0.0 and energy_increment_mj(-1.0, 1.0, 2) == 0.0
    assert energy_increment_mj(4.0, 1.0, 0) == pytest.approx(4000.0), "no CPUs known counts as one"


def test_ledger_totals_equal_the_sum_of_rows(tmp_path: Path) -> None:
    """Totals per tenant and overall are the sums of the job rows, whatever the mix of states."""
    led = Ledger(tmp_path / "ledger.sqlite")
    rng = random.Random(7)
    jobs = []
    for i in range(60):
        j = Job(
            id=f"j{i}",
            tenant=rng.choice(["a", "b", "c"]),
            processor="test.spin",
            params={"i": i},
            inputs=[],
            budget=Budget.parse({}),
            submitted_at=1000.0 + i,
        )
        led.add(j)
        j.state = rng.choice(["done", "over_budget", "failed", "cancelled", "queued"])
        j.usage = Usage(
            cpu_s=rng.random() * 3,
            energy_mj=rng.random() * 900,
            downlink_bytes=rng.randrange(5000),
            wall_s=rng.random() * 10,
        )
        led.save(j)
        jobs.append(j)
    tot = led.totals()
    for tenant in ("a", "b", "c"):
        mine = [j for j in jobs if j.tenant == tenant]
        t = tot["tenants"][tenant]
        assert t["jobs"] == len(mine)
        assert t["cpu_s"] == pytest.approx(sum(j.usage.cpu_s for j in mine))
        assert t["energy_mj"] == pytest.approx(sum(j.usage.energy_mj for j in mine))
        assert t["downlink_bytes"] == sum(j.usage.downlink_bytes for j in mine)
        assert sum(t["states"].values()) == len(mine)
        assert led.totals(tenant)["total"]["cpu_s"] == pytest.approx(t["cpu_s"])
    assert tot["total"]["energy_mj"] == pytest.approx(sum(j.usage.energy_mj for j in jobs))
    assert [j.id for j in led.jobs(limit=5)] == [f"j{i}" for i in range(55, 60)], "the newest, oldest first"
    assert led.get("j3") is not None and led.get("j3").params == {"i": 3}  # type: ignore[union-attr]
    led.close()


def test_policy_refuses_in_safe_and_holds_in_degraded() -> None:
    """SAFE refuses with a typed error that says why; DEGRADED and throttle hold queued jobs, with the reason."""
    with pytest.raises(JobRefused) as info:
        policy.admit("SAFE")
    assert info.value.code == "job_refused" and info.value.details["reason"] == "safe_mode"
    assert "SAFE mode" in info.value.message and "refused" in info.value.message
    policy.admit("NOMINAL")
    policy.admit("DEGRADED")
    assert policy.start_blocker("NOMINAL", 1, 2) is None
    assert "DEGRADED" in (policy.start_blocker("DEGRADED", 1, 2) or "")
    assert "throttle level 2" in (policy.start_blocker("NOMINAL", 2, 2) or "")
    assert "SAFE" in (policy.start_blocker("SAFE", 0, 2) or "")


def test_store_keeps_each_tenant_in_its_own_directory(tmp_path: Path) -> None:
    """'..', absolute paths and symlinks out are refused; names are relative to the tenant's directory."""
    store = TenantStore(tmp_path / "store", max_put_bytes=100)
    store.put("a", "secret.bin", b"A's data")
    store.put("b", "sub/x.bin", b"B")
    assert store.resolve("b", "sub/x.bin") == (tmp_path / "store" / "b" / "sub" / "x.bin").resolve()
    for name in ("../a/secret.bin", "/etc/passwd", "sub/../../a/secret.bin", str(tmp_path / "store/a/secret.bin")):
        with pytest.raises(OutsideStore):
            store.resolve("b", name)
        with pytest.raises(OutsideStore):
            store.put("b", name, b"overwrite")
    os.symlink(tmp_path / "store" / "a" / "secret.bin", tmp_path / "store" / "b" / "link.bin")
    with pytest.raises(OutsideStore, match="leads out"):
        store.resolve("b", "link.bin")
    with pytest.raises(BadArguments, match="no such file"):
        store.resolve("b", "secret.bin")
    with pytest.raises(BadArguments, match="over the limit"):
        store.put("b", "big.bin", b"x" * 101)
    assert [f["name"] for f in store.files("b")] == ["link.bin", "sub/x.bin"]
    assert store.put("b", "parts.bin", b"12345")["bytes"] == 5
    done = store.put("b", "parts.bin", b"678", append=True)
    assert done["bytes"] == 8 and (tmp_path / "store" / "b" / "parts.bin").read_bytes() == b"12345678"
    with pytest.raises(BadArguments, match="101 B is over the limit"):
        store.put("b", "parts.bin", b"x" * 93, append=True)
    assert (tmp_path / "store" / "a" / "secret.bin").read_bytes() == b"A's data"
    for bad in ("", "..", "a/b", "-x", "a" * 65, "a b"):
        with pytest.raises(BadArguments):
            check_tenant(bad)


def test_inference_batch_is_bounded_by_memory_and_throttle() -> None:
    """The batch fits the memory budget (with room for intermediates) and halves per throttle level."""
    assert batch_size(1024, 1.0, 0, 10_000) == 512
    assert batch_size(1024, 1.0, 1, 10_000) == 256
    assert batch_size(1024, 1.0, 3, 10_000) == 64
    assert batch_size(1024, 1.0, 0, 100) == 100
    assert batch_size(10 << 20, 1.0, 0, 100) == 1, "never less than one sample"


def test_outbox_sends_what_fits_the_downlink_budget(tmp_path: Path) -> None:
    """The record first, then downlink files in 32 KiB chunks in name order, skipping what would exceed the budget."""
    from services.jobs.downlink import Outbox

    out = tmp_path / "out"
    (out / "downlink").mkdir(parents=True)
    (out / "downlink" / "a.bin").write_bytes(b"a" * 40_000)
    (out / "downlink" / "b.bin").write_bytes(b"b" * 30_000)
    (out / "downlink" / "c.bin").write_bytes(b"c" * 1_000)
    job = Job(
        id="j1",
        tenant="t",
        processor="p",
        params={},
        inputs=[],
        budget=Budget.parse({"downlink_bytes": 42_000}),
        submitted_at=0.0,
        state="over_budget",
    )
    box = Outbox()
    box.add(job, out)
    got = box.take(100)
    assert got[0][0] == "job" and got[0][1]["downlink"] == {
        "files": [{"name": "a.bin", "bytes": 40_000}, {"name": "c.bin", "bytes": 1_000}],
        "bytes": 41_000,
        "skipped": ["b.bin"],
    }
    chunks = [p for kind, p in got if kind == "file"]
    assert [(c["file"], c["offset"], len(c["data"])) for c in chunks] == [
        ("a.bin", 0, 32768),
        ("a.bin", 32768, 40_000 - 32768),
        ("c.bin", 0, 1000),
    ]
    assert len(box) == 0 and box.take(5) == []


def test_a_job_process_does_not_load_the_service() -> None:
    """``python -m services.jobs.runner`` starts without importing the Service (psutil, sqlite, the manager)."""
    import subprocess
    import sys

    code = (
        "import sys, services.jobs.runner; "
        "print(sorted(m for m in sys.modules if m.startswith('services.jobs') or m == 'psutil'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "['services.jobs', 'services.jobs.runner']"
