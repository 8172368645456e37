"""Typed errors of the jobs service: each travels with a stable code the ground can act on."""

from __future__ import annotations

from flightos import CommandError


class JobRefused(CommandError):
    """A submission refused; ``details["reason"]`` is ``safe_mode``, ``queue_full`` or ``stopping``."""

    code = "job_refused"


class UnknownJob(CommandError):
    """No such job for this tenant. Another tenant's job answers exactly like a missing one."""

    code = "unknown_job"


class OutsideStore(CommandError):
    """A store path that escapes the tenant's own store (``..``, an absolute path, a symlink out).

    Its own code, not the kernel's ``access_denied`` (which means the target's ACL refused a command).
    """

    code = "outside_store"


class UnknownProcessor(CommandError):
    """No processor of that name is registered (entry-point group ``flightos.processors``)."""

    code = "unknown_processor"
