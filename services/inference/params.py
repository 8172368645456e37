"""``inference.run``'s job parameters as a typed schema: a wrong one fails the job naming the key, not deep in numpy."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from flightos import Options


class InferenceParams(Options, frozen=True):
    """What ``params`` of an ``inference.run`` job may hold (docs/jobs.md); unknown keys are refused."""

    model: Annotated[str, Meta(description="the .onnx input to run when there are several")] = ""
    input: Annotated[str, Meta(description="the .npy input to feed when there are several")] = ""
    memory_mb: Annotated[float, Meta(description="the memory one batch may take, MiB")] = 64.0
    max_batch: Annotated[int, Meta(description="the most samples in one batch")] = 256
    threads: Annotated[int, Meta(description="onnxruntime's intra-op threads")] = 1
    downlink: Annotated[bool, Meta(description="write the outputs under out/downlink/ for the ground")] = False

    def __post_init__(self) -> None:
        if self.memory_mb <= 0:
            raise self.invalid("memory_mb", "a number > 0")
        if self.max_batch < 1:
            raise self.invalid("max_batch", "an integer >= 1")
        if self.threads < 1:
            raise self.invalid("threads", "an integer >= 1")
