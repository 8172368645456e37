"""Which Raspberry Pi generation a device-tree model string names: one answer for probe and backend."""

from __future__ import annotations

#: Generations by a device-tree model substring (BCM2712 = pi5, BCM2711 = pi4); the first match wins.
PI_GENERATIONS = (
    ("Raspberry Pi 500", "pi5"),
    ("Raspberry Pi 5", "pi5"),
    ("Compute Module 5", "pi5"),
    ("Raspberry Pi 400", "pi4"),
    ("Raspberry Pi 4", "pi4"),
    ("Compute Module 4", "pi4"),
)


def pi_generation(model: str) -> str | None:
    """``'Raspberry Pi 5 Model B Rev 1.0'`` -> ``'pi5'``; None for other (or older) Pis."""
    for needle, gen in PI_GENERATIONS:
        if needle in model:
            return gen
    return None
