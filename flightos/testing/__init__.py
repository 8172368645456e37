"""Helpers to test services against a real runtime: start one, command it, wait on telemetry."""

from flightos.testing.eventually import eventually
from flightos.testing.runtime import RuntimeProcess, RuntimeStartError, active

__all__ = ["RuntimeProcess", "RuntimeStartError", "active", "eventually"]
