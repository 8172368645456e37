"""Mission services shipped with flightos; each is a plugin registered under ``flightos.services``."""
