"""``python -m flightos.report RUN``."""

from flightos.report.cli import main

main()
