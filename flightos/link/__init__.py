"""Links between the kernels of several boards: CURVE-authenticated TCP, routing, replication, failover.

Tour: ``keys`` (CURVE key files), ``zap`` (the allow-list), ``protocol`` (what crosses a link),
``peers`` (the kernel's view of each peer), ``link`` (sockets, commands and telemetry across boards),
``replication`` (store snapshots), ``failover`` (who runs a dead board's critical services).
"""
