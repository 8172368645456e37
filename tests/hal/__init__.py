"""HAL tests over recorded board trees (``hal.testing``)."""
