"""The ground link's shared pieces: PUS codec, telecommand security, the mission database.

Both the on-board ``ground`` service and the ground-side tools (``flightos ground``, ``flightos
keys``, ``flightos mdb``) use these, so flight and ground can never disagree on a byte.
"""
