"""Generic Linux backend: sysfs, procfs and psutil-free parsing of what every board exposes."""

from hal.backends.linux.board import LinuxBoard

__all__ = ["LinuxBoard"]
