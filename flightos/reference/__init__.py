"""References a plugin author needs, generated from the code: the bus topics (docs/topics.md) and the
testing fixtures (docs/testing.md). ``python -m flightos.reference topics|testing`` prints one; a test
checks that the checked-in pages are current.
"""
