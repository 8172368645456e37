"""The router harness's services keep their ledger files open as real ones do: closed after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kernel.routing.fakes import close_all


@pytest.fixture(autouse=True)
def _close_ledgers() -> Iterator[None]:
    yield
    close_all()
