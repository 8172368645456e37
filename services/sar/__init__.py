"""The ``sar`` payload: synthetic SAR scenes, CFAR ship detection and compact ship alerts.

``scene`` generates scenes with ground truth, ``cfar`` holds the detectors, ``detect`` tiles,
clusters and scores them, and ``processor`` is the ``sar.detect`` compute-job processor.
"""
