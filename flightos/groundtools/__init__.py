"""Ground-only tools: the bench console client and the mission database exporters.

They use the on-board protocol library (``flightos.ground``) but never run on a board: nothing in the
kernel, the host, the SDK, the bus, the link or a service imports them (an import-linter contract).
"""
