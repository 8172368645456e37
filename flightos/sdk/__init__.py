"""The service SDK: what a mission-service author imports (re-exported from ``flightos``)."""
