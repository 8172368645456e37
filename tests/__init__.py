"""The flightos test suite: a package, so plain ``pytest`` puts the repository (not ``tests/``) on sys.path."""
