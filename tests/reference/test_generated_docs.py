"""docs/topics.md and docs/testing.md are what flightos.reference renders from the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("page", ["topics", "testing"])
def test_the_checked_in_page_is_current(page: str) -> None:
    """Regenerate with `python -m flightos.reference PAGE > docs/PAGE.md` (or `make docs`) after a change."""
    res = subprocess.run(
        [sys.executable, "-m", "flightos.reference", page], capture_output=True, text=True, timeout=60, check=True
    )
    assert (DOCS / f"{page}.md").read_text() == res.stdout, (
        f"docs/{page}.md is stale: python -m flightos.reference {page} > docs/{page}.md"
    )


def test_the_testing_page_names_what_the_guide_uses() -> None:
    """The methods a plugin author meets in the guide and the fixtures' docstrings are all listed."""
    text = (DOCS / "testing.md").read_text()
    for needle in (
        "`async core_fail(core: int) -> None`",
        "`async function(fid: int",
        "| `flightos_runtime` |",
        "`async telemetry(topic: str",
        'asyncio_mode = "auto"',
        "`async eventually(",
    ):
        assert needle in text, needle


def test_every_topic_prefix_has_a_section() -> None:
    """The kernel's, the SDK's and each shipped service's topics are in the table."""
    from flightos.reference.topics import TOPICS

    names = {t.name for t in TOPICS}
    assert {
        "tm.kernel.health",
        "tm.kernel.services",
        "tm.hal.reading",
        "ev.kernel",
        "ev.<service>",
        "tm.<service>.<name>",
        "dl.<service>.<name>",
    } <= names
    assert all(t.fields or not t.fixed for t in TOPICS)


def test_usage_error() -> None:
    res = subprocess.run([sys.executable, "-m", "flightos.reference"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "topics|testing" in res.stderr
