"""The ``flightos`` command line: run the runtime, look at it, command it."""
