"""The kernel: supervises services, routes commands, owns the bus endpoints. Internal to flightos."""
