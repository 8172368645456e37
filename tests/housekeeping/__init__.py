"""Tests of the housekeeping service: its telemetry on a running runtime."""
