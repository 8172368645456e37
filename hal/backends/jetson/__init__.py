"""NVIDIA Jetson backend (Nano/JetPack 4, Orin/JetPack 5-6): zones, INA3221 rails, GPU, nvpmodel."""

from hal.backends.jetson.board import JetsonBoard

__all__ = ["JetsonBoard"]
