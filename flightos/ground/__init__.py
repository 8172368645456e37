"""The ground link's on-board protocol library: PUS codec, telecommand security, the mission database.

Both the on-board ``ground`` service and the ground-side tools (``flightos.groundtools``: ``flightos ground``,
``flightos keys``, ``flightos mdb``) use these, so flight and ground can never disagree on a byte. Ground-only
code lives in ``flightos.groundtools``, which nothing here imports.
"""
