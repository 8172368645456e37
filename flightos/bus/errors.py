"""Typed command errors: every command ends in a value or exactly one of these."""

from __future__ import annotations

from typing import Any, ClassVar


class CommandError(Exception):
    """A command did not succeed; ``code`` is stable and machine-readable."""

    code: ClassVar[str] = "command_failed"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_wire(self) -> dict[str, Any]:
        """The error as it travels in a RESULT payload."""
        return {"code": self.code, "message": self.message, "details": self.details}

    @staticmethod
    def from_wire(err: Any) -> CommandError:
        """Rebuild the typed error from a RESULT payload (unknown codes keep their code)."""
        if not isinstance(err, dict):
            return BadRequest(f"malformed error in result: {err!r}")
        code = str(err.get("code", "command_failed"))
        message = str(err.get("message", ""))
        details = err.get("details") or {}
        cls = ERRORS.get(code)
        if cls is None:
            exc = CommandError(message, **details)
            exc.code = code  # type: ignore[misc]
            return exc
        return cls(message, **details)


class UnknownService(CommandError):
    """No such service in this runtime."""

    code = "unknown_service"


class UnknownCommand(CommandError):
    """The service has no command of that name."""

    code = "unknown_command"


class BadArguments(CommandError):
    """Arguments missing, unexpected or of the wrong type; checked before the handler runs."""

    code = "bad_arguments"


class ServiceFailed(CommandError):
    """The service died with the command delivered to it; ``details["started"]`` says whether it had started.

    ``started: false`` is proof that the service never took the command: it did not run, and a retry with the
    same id runs it. ``started: true`` means it had taken the command: it ran at most once (perhaps partly).
    """

    code = "service_failed"


class ServiceUnavailable(CommandError):
    """The service is stopped, disabled or FAILED and will not take commands."""

    code = "service_unavailable"


class DeadlineExceeded(CommandError):
    """No result before the command's deadline; the command may or may not have run.

    With ``details["delivered"]`` false it never reached its service: it did not run, and a retry runs it.
    """

    code = "deadline_exceeded"


class QueueFull(CommandError):
    """The destination is restarting and its bounded command queue is full."""

    code = "queue_full"


class AccessDenied(CommandError):
    """The target's access-control list does not let this caller run this command."""

    code = "access_denied"


class PublishDenied(PermissionError):
    """The target's ``[acl] publish`` table does not let this service publish this topic."""


class FrameTooLarge(CommandError):
    """A command or result is larger than the runtime's ``runtime.max_frame_bytes``; nothing was sent or run
    (for a result: the command ran, but its value could not be carried)."""

    code = "frame_too_large"


class BadRequest(CommandError):
    """The request itself is malformed (not a command envelope)."""

    code = "bad_request"


class HandlerError(CommandError):
    """The command's handler raised; the message says what."""

    code = "command_failed"


ERRORS: dict[str, type[CommandError]] = {
    cls.code: cls
    for cls in (
        UnknownService,
        UnknownCommand,
        BadArguments,
        ServiceFailed,
        ServiceUnavailable,
        DeadlineExceeded,
        QueueFull,
        BadRequest,
        HandlerError,
        AccessDenied,
        FrameTooLarge,
    )
}
