"""Typed service parameters with defaults, settable over the bus (PUS ST[20]) and persisted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar, overload

import msgspec

from flightos.bus.errors import BadArguments
from flightos.sdk.options import non_finite

T = TypeVar("T")


class Parameter(Generic[T]):
    """A class attribute declaring a typed, bounded, persisted parameter of a service.

    ``exposure_ms = Parameter(10, min=1, max=1000, doc="camera exposure")`` reads as an ``int``
    on the instance; ``set_param`` over the bus validates and persists a new value.
    """

    def __init__(
        self,
        default: T,
        *,
        doc: str = "",
        type: type[T] | None = None,
        min: float | None = None,
        max: float | None = None,
        choices: Sequence[T] | None = None,
    ) -> None:
        self.type: Any = type if type is not None else default.__class__
        self.doc = doc
        self.min = min
        self.max = max
        self.choices = list(choices) if choices is not None else None
        self.name = ""
        self.default: T = self.check(default, what="default")

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> Parameter[T]: ...
    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> T: ...
    def __get__(self, obj: object | None, objtype: type | None = None) -> Parameter[T] | T:
        if obj is None:
            return self
        values: dict[str, Any] = obj.__dict__.setdefault("_flightos_params", {})
        return values.get(self.name, self.default)  # type: ignore[no-any-return]

    def __set__(self, obj: object, value: T) -> None:
        values: dict[str, Any] = obj.__dict__.setdefault("_flightos_params", {})
        values[self.name] = self.check(value)

    def check(self, value: Any, what: str = "value") -> T:
        """Convert ``value`` to the parameter's type and check its bounds, or raise BadArguments."""
        label = self.name or "parameter"
        try:
            v: Any = msgspec.convert(value, self.type, strict=True)
        except msgspec.ValidationError as exc:
            raise BadArguments(f"{label}: {what} {value!r} is not a {self.type.__name__} ({exc})") from None
        if non_finite(v, label):
            raise BadArguments(f"{label}: {what} {v!r} is not a finite number")
        if self.min is not None and v < self.min:
            raise BadArguments(f"{label}: {what} {v!r} is below the minimum {self.min}")
        if self.max is not None and v > self.max:
            raise BadArguments(f"{label}: {what} {v!r} is above the maximum {self.max}")
        if self.choices is not None and v not in self.choices:
            raise BadArguments(f"{label}: {what} {v!r} is not one of {self.choices}")
        return v  # type: ignore[no-any-return]

    def describe(self) -> dict[str, Any]:
        """The parameter's declaration, for ``list_params`` and the mission database."""
        return {
            "name": self.name,
            "type": self.type.__name__,
            "default": self.default,
            "min": self.min,
            "max": self.max,
            "choices": self.choices,
            "doc": self.doc,
        }
