"""Routing: the command router and the identity of the processes that talk to it."""
