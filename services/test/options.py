"""``[services.test.options]``: the test service's typed options, checked by the kernel when the target loads."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from flightos import Options


class TestOptions(Options, frozen=True):
    """The test service's drills that are set in the target rather than commanded."""

    fail_start_while: Annotated[
        str,
        Meta(
            description="a path: while a file exists there, every start fails "
            "(a drill for a cause that clears, like a full disk); empty: off"
        ),
    ] = ""
