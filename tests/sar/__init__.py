"""Tests of the SAR ship-detection payload (services.sar)."""
