"""Target files: one TOML per board/profile naming the HAL backend, services, policies and limits."""
