"""Exit codes of the ``flightos`` command, documented in the README; never renumbered."""

OK = 0
COMMAND_FAILED = 1
USAGE = 2
NO_RUNTIME = 3
TIMEOUT = 4
CONFIG = 5
RUNTIME_BUSY = 6
INTERNAL = 70
