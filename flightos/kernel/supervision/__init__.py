"""Supervision: spawning service processes (fork server or exec), containing them, restarting them."""
