"""Core health: the monitor loop, core states, system modes, thermal governor, placement, self-tests, board faults."""
