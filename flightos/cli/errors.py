"""Errors the CLI turns into one-line messages and exit codes."""


class UsageError(Exception):
    """Arguments the parser accepted but that make no sense (exit code 2)."""
