"""``inference.run``'s parameters are a typed schema: a wrong one fails the job naming the key, as docs say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flightos import JobContext
from services.inference import InferenceError, job_params, run
from services.inference.params import InferenceParams
from tests.config.test_service_options import options_of

DOC = Path(__file__).resolve().parents[2] / "docs" / "jobs.md"


def ctx(tmp_path: Path, **params: object) -> JobContext:
    return JobContext(job_id="j1", tenant="a", params=dict(params), inputs=[], out_dir=tmp_path)


def test_defaults_and_numbers_written_as_integers(tmp_path: Path) -> None:
    assert job_params(ctx(tmp_path)) == InferenceParams()
    p = job_params(ctx(tmp_path, memory_mb=32, max_batch=8, downlink=True, model="m.onnx"))
    assert (p.memory_mb, p.max_batch, p.downlink, p.model) == (32.0, 8, True, "m.onnx")
    assert isinstance(p.memory_mb, float)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_batch": "x"}, "params.max_batch: expected an integer, got 'x'"),
        ({"memory_mb": 0}, "params.memory_mb: expected a number > 0, got 0.0"),
        ({"threads": 0}, "params.threads: expected an integer >= 1, got 0"),
        ({"memory_mb": float("nan")}, "params.memory_mb: expected a finite number, got nan"),
        ({"downlink": "yes"}, "params.downlink: expected true or false, got 'yes'"),
        ({"batch": 3}, "params.batch: unknown option (known: model, input, memory_mb, max_batch, threads, downlink)"),
    ],
)
def test_a_wrong_parameter_fails_the_job_naming_the_key(
    tmp_path: Path, params: dict[str, object], message: str
) -> None:
    with pytest.raises(InferenceError) as err:
        job_params(ctx(tmp_path, **params))
    assert str(err.value) == message


def test_run_refuses_bad_parameters_before_it_touches_the_inputs(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="run() first needs the 'inference' extra, which is not installed")
    with pytest.raises(InferenceError, match=r"^params\.max_batch: expected an integer >= 1, got 0$"):
        run(ctx(tmp_path, max_batch=0))


def test_every_parameter_is_described_and_listed_in_the_jobs_page() -> None:
    section = re.search(r"^### `inference\.run`\n(.*?)(?=^### )", DOC.read_text(), re.S | re.M)
    assert section is not None, "docs/jobs.md has no inference.run section"
    options = options_of(InferenceParams)
    assert [k for k, (doc, _) in options.items() if not doc] == []
    unlisted = [k for k in options if f"`{k}`" not in section.group(1) and f"`{k}=`" not in section.group(1)]
    assert unlisted == [], f"docs/jobs.md's inference.run section does not name: {unlisted}"
