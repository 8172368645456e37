"""thermwatch: the device layer's example service (an I²C sensor, a GPIO heater, a UART radio)."""

from services.thermwatch.service import Thermwatch

__all__ = ["Thermwatch"]
