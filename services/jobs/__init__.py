"""The ``jobs`` service: metered, budgeted compute jobs for tenants (see docs/jobs.md).

``Jobs`` (the Service class, in ``service.py``) is imported on first use, so that a job process,
``python -m services.jobs.runner``, starts without loading the service and its dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.jobs.service import Jobs

__all__ = ["Jobs"]


def __getattr__(name: str) -> Any:
    if name == "Jobs":
        from services.jobs.service import Jobs

        return Jobs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
