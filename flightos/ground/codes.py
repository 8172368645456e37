"""PUS service numbers and the failure codes of ST[01] reports: stable, documented, never renumbered."""

from __future__ import annotations

import enum


class St(enum.IntEnum):
    """The PUS services flightos speaks."""

    VERIFICATION = 1
    HOUSEKEEPING = 3
    EVENTS = 5
    FUNCTIONS = 8
    TIME = 9
    SCHEDULING = 11
    STORAGE = 15
    TEST = 17
    PARAMETERS = 20


class Failure(enum.IntEnum):
    """Why a telecommand failed, as the 16-bit code of its ST[01] failure report (docs/ground.md)."""

    MALFORMED_PACKET = 1
    CRC_ERROR = 2
    WRONG_APID = 3
    UNKNOWN_SERVICE = 4
    UNKNOWN_SUBTYPE = 5
    BAD_APP_DATA = 6
    AUTH_MISSING = 7
    AUTH_UNKNOWN_KEY = 8
    AUTH_BAD_MAC = 9
    AUTH_REPLAY = 10
    AUTH_OUT_OF_WINDOW = 11
    UNKNOWN_FUNCTION = 12
    BAD_ARGUMENTS = 13
    COMMAND_FAILED = 14
    SERVICE_UNAVAILABLE = 15
    DEADLINE_EXCEEDED = 16
    UNKNOWN_PARAMETER = 17
    BAD_PARAMETER_VALUE = 18
    SCHEDULE_REFUSED = 19
    UNKNOWN_STRUCTURE = 20
    INTERNAL = 21
    AUTH_RESYNC_REQUIRED = 22
    AUTH_BAD_NONCE = 23


COMMAND_ERRORS = {
    "unknown_service": Failure.SERVICE_UNAVAILABLE,
    "unknown_command": Failure.UNKNOWN_FUNCTION,
    "bad_arguments": Failure.BAD_ARGUMENTS,
    "service_failed": Failure.COMMAND_FAILED,
    "service_unavailable": Failure.SERVICE_UNAVAILABLE,
    "deadline_exceeded": Failure.DEADLINE_EXCEEDED,
    "queue_full": Failure.SERVICE_UNAVAILABLE,
    "command_failed": Failure.COMMAND_FAILED,
    "bad_request": Failure.BAD_APP_DATA,
}
"""Typed bus errors mapped onto ST[01] failure codes."""
