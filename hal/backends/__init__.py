"""Board backends: linux (generic), rpi, jetson and sim. Import them through ``hal.open_board``."""
