"""``inference.run``: a tiny ONNX model built in code (y = relu(x W + b)) runs as a job and matches numpy."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest

from flightos import JobContext
from flightos.testing import eventually
from services.jobs.manager import Config, JobManager
from tests.jobs.test_manager import FakeEnv

np = pytest.importorskip("numpy")

W = [[0.5, -1.0, 0.25], [1.5, 0.0, -0.5], [-2.0, 1.0, 1.0], [0.1, 0.2, 0.3]]
B = [0.1, -0.2, 0.05]


def tiny_model() -> bytes:
    """relu(x @ W + b) with x: float32[N, 4], W: 4x3, b: 3 — built with the onnx helper API, nothing downloaded."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.array(W, dtype=np.float32), "W")
    b = numpy_helper.from_array(np.array(B, dtype=np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="flightos-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def npy(a: Any) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def expected(x: Any) -> Any:
    return np.maximum(x @ np.array(W, dtype=np.float32) + np.array(B, dtype=np.float32), 0)


async def test_inference_job_matches_numpy(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    """The model from the store runs in bounded batches; outputs equal numpy's; latency and count reported."""
    pytest.importorskip("onnxruntime")
    mgr = JobManager(tmp_path / "jobs", FakeEnv(), Config())
    x = np.random.default_rng(3).normal(size=(1000, 4)).astype(np.float32)
    mgr.store.put("a", "models/tiny.onnx", tiny_model())
    mgr.store.put("a", "x.npy", npy(x))
    job = mgr.submit(
        "inference.run", {"memory_mb": 0.01, "max_batch": 1000}, ["models/tiny.onnx", "x.npy"], {"cpu_s": 30}, "a"
    )

    def drive() -> dict[str, Any]:
        """Tick the manager as the service does while the job runs; its result so far."""
        if not mgr.get(job["id"], "a").finished:
            mgr.tick()
        return mgr.result(job["id"], "a")

    await eventually(
        drive, until=lambda _: mgr.get(job["id"], "a").finished, timeout=30, what="the inference job to end"
    )
    res = mgr.result(job["id"], "a")
    assert res["state"] == "done", res
    s = res["result"]
    assert s["count"] == 1000 and s["batches"] > 1, "0.01 MiB cannot hold the whole array"
    assert max(s["batch_sizes"]) == 187, "0.01 MiB / (2 x (16 + 12) B per sample)"
    assert set(s["latency_ms"]) == {"mean", "p50", "p95", "max"} and 0 < s["latency_ms"]["p50"] < 1000
    assert s["outputs"] == [{"name": "y", "file": "y.npy", "shape": [1000, 3], "dtype": "float32"}]
    y = np.load(next(f["path"] for f in res["files"] if f["name"] == "y.npy"))
    np.testing.assert_allclose(y, expected(x), rtol=1e-5, atol=1e-6)
    assert res["per_item"]["count"] == 1000 and res["per_item"]["energy_mj"] > 0


def test_missing_onnxruntime_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without onnxruntime the job fails with a message that says which extra to install."""
    from services.inference import InferenceError, run

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    ctx = JobContext(job_id="j1", tenant="a", params={}, inputs=[], out_dir=tmp_path)
    with pytest.raises(InferenceError, match=r"install the 'inference' extra \(pip install 'flightos\[inference\]'\)"):
        run(ctx)


def test_inference_honours_throttle_and_checks_inputs(tmp_path: Path) -> None:
    """Throttle level 2 quarters the batch; a missing model is a clear error."""
    pytest.importorskip("onnxruntime")
    from services.inference import InferenceError, run

    (tmp_path / "m.onnx").write_bytes(tiny_model())
    x = np.ones((64, 4), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out"
    out.mkdir()
    ctx = JobContext(
        job_id="j1",
        tenant="a",
        params={"max_batch": 16, "downlink": True},
        inputs=[tmp_path / "m.onnx", tmp_path / "x.npy"],
        out_dir=out,
        throttle=lambda: 2,
    )
    s = run(ctx)
    assert max(s["batch_sizes"]) == 4 and s["count"] == 64, "16 >> 2"
    np.testing.assert_allclose(np.load(out / "downlink" / "y.npy"), expected(x), rtol=1e-6)
    with pytest.raises(InferenceError, match=r"expected exactly one \.onnx input"):
        run(JobContext(job_id="j2", tenant="a", params={}, inputs=[tmp_path / "x.npy"], out_dir=out))
