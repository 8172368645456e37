"""``inference.run``: run an ONNX model from the tenant's store on a .npy array, in bounded batches.

Inputs (from the job's ``inputs``): one ``.onnx`` model and one ``.npy`` array whose first axis is
the batch axis (name them with ``params.model`` / ``params.input`` when there are several).

Parameters (checked against ``InferenceParams`` in params.py; a wrong one fails the job naming the key):
- ``memory_mb`` (default 64): the memory a batch may take; the batch size is
  ``memory_mb / (2 x (input + output bytes per sample))``, the factor 2 leaving room for the
  model's intermediate tensors.
- ``max_batch`` (default 256), ``threads`` (onnxruntime intra-op threads, default 1).
- ``downlink`` (default false): write the outputs under ``out/downlink/`` so they are queued for
  downlink (and metered against the job's downlink budget).

The throttle level halves the batch size per level and is re-read before every batch. The input
is memory-mapped and outputs are written into memory-mapped .npy files, one per model output,
so memory stays within the budget whatever the array's size. The summary has the per-inference
latency (batch time / batch size: mean, p50, p95, max), the count and the batch sizes used.

onnxruntime is an optional extra: ``pip install 'flightos[inference]'``.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

from flightos import JobContext
from flightos.sdk.options import OptionsError, check_options
from services.inference.params import InferenceParams

EXTRA = "inference"
MISSING = (
    f"inference.run needs onnxruntime and numpy, which are not installed: install the "
    f"'{EXTRA}' extra (pip install 'flightos[{EXTRA}]')"
)
ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(bool)": "bool",
}


class InferenceError(RuntimeError):
    """The job's inputs or the model do not fit what inference.run does; the message says how."""


def batch_size(per_sample_bytes: int, memory_mb: float, throttle: int, max_batch: int) -> int:
    """Samples per batch: what ``memory_mb`` holds, at most ``max_batch``, halved per throttle level."""
    by_memory = int(memory_mb * 2**20) // max(1, 2 * per_sample_bytes)
    return max(1, min(max_batch, by_memory) >> max(0, min(int(throttle), 16)))


def job_params(ctx: JobContext) -> InferenceParams:
    """The job's ``params`` checked against :class:`InferenceParams`; InferenceError naming the key if not."""
    checked = check_options(InferenceParams, ctx.params, "inference")
    if isinstance(checked, OptionsError):
        raise InferenceError(
            f"params.{checked.path}: {checked.detail}" if checked.path else f"params: {checked.detail}"
        )
    return checked


def _pick(ctx: JobContext, suffix: str, param: str, want: str) -> Path:
    """The one input with ``suffix``, or the one named ``want`` (the job's ``params[param]``)."""
    found = [p for p in ctx.inputs if p.suffix.lower() == suffix]
    if want:
        found = [p for p in found if p.name == want or p.as_posix().endswith("/" + str(want))]
    if len(found) != 1:
        names = ", ".join(p.name for p in ctx.inputs) or "none"
        raise InferenceError(
            f"expected exactly one {suffix} input"
            + (f" named {want!r}" if want else "")
            + f" (inputs: {names}; pass params.{param} to choose)"
        )
    return found[0]


def _stats_ms(values: list[tuple[float, int]]) -> dict[str, float]:
    """Mean, p50, p95 and max in ms of values given as (value, how many times)."""
    if not values:
        return {}
    s = sorted(values)
    total = sum(w for _, w in s)

    def q(p: float) -> float:
        rank, seen = max(1, math.ceil(p * total)), 0
        for v, w in s:
            seen += w
            if seen >= rank:
                return v
        return s[-1][0]

    return {
        "mean": round(1000 * sum(v * w for v, w in s) / total, 6),
        "p50": round(1000 * q(0.5), 6),
        "p95": round(1000 * q(0.95), 6),
        "max": round(1000 * s[-1][0], 6),
    }


def run(ctx: JobContext) -> dict[str, Any]:
    """Run the model over the array; write one .npy per model output; return latency and count."""
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as exc:
        raise InferenceError(f"{MISSING} ({exc})") from None

    params = job_params(ctx)
    model_path = _pick(ctx, ".onnx", "model", params.model)
    data_path = _pick(ctx, ".npy", "input", params.input)
    memory_mb, max_batch, threads = params.memory_mb, params.max_batch, params.threads
    out_dir = ctx.out_dir / "downlink" if params.downlink else ctx.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    t_load = time.perf_counter()
    sess = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - t_load
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise InferenceError(f"the model has {len(inputs)} inputs; inference.run feeds exactly one")
    feed = inputs[0]
    dtype = np.dtype(ORT_DTYPES.get(feed.type, "float32"))

    x = np.load(data_path, mmap_mode="r", allow_pickle=False)
    if x.ndim < 1 or x.shape[0] == 0:
        raise InferenceError(f"{data_path.name}: expected an array with samples along axis 0, got shape {x.shape}")
    n = int(x.shape[0])
    in_bytes = int(np.prod(x.shape[1:], dtype=np.int64)) * dtype.itemsize

    outs_meta = sess.get_outputs()
    files: list[Any] = []
    done, batches = 0, 0
    per_item: list[tuple[float, int]] = []
    per_batch: list[tuple[float, int]] = []
    sizes: set[int] = set()
    per_sample = in_bytes
    b = 1  # the first batch is one sample: it tells the output sizes before memory is committed
    t_all = time.perf_counter()
    while done < n:
        xb = np.ascontiguousarray(x[done : done + b], dtype=dtype)
        t0 = time.perf_counter()
        ys = sess.run(None, {feed.name: xb})
        dt = time.perf_counter() - t0
        k = int(xb.shape[0])
        if not files:
            for meta, y in zip(outs_meta, ys, strict=True):
                if y.ndim < 1 or y.shape[0] != k:
                    raise InferenceError(f"output {meta.name!r} is not batched along axis 0 (shape {y.shape})")
                safe = re.sub(r"[^A-Za-z0-9_.-]", "_", meta.name) or "output"
                path = out_dir / f"{safe}.npy"
                mm = np.lib.format.open_memmap(path, mode="w+", dtype=y.dtype, shape=(n, *y.shape[1:]))
                files.append((meta.name, path, mm))
            out_bytes = sum(int(np.prod(y.shape[1:], dtype=np.int64)) * y.dtype.itemsize for y in ys)
            per_sample = in_bytes + out_bytes
        for (_, _, mm), y in zip(files, ys, strict=True):
            mm[done : done + k] = y
        done += k
        batches += 1
        sizes.add(k)
        per_batch.append((dt, 1))
        per_item.append((dt / k, k))
        ctx.checkpoint({"done": done, "of": n, "batches": batches})
        b = batch_size(per_sample, memory_mb, ctx.throttle(), max_batch)
    wall = time.perf_counter() - t_all
    outputs = []
    for name, path, mm in files:
        mm.flush()
        outputs.append(
            {
                "name": name,
                "file": path.relative_to(ctx.out_dir).as_posix(),
                "shape": list(mm.shape),
                "dtype": str(mm.dtype),
            }
        )
    return {
        "count": n,
        "batches": batches,
        "batch_sizes": sorted(sizes),
        "latency_ms": _stats_ms(per_item),
        "batch_latency_ms": _stats_ms(per_batch),
        "throughput_per_s": round(n / wall, 2) if wall > 0 else None,
        "model_load_ms": round(1000 * load_s, 3),
        "model": model_path.name,
        "input": data_path.name,
        "input_shape": list(x.shape),
        "memory_mb": memory_mb,
        "threads": threads,
        "outputs": outputs,
    }
