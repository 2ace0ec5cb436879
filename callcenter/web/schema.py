"""Pure: the shapes of the API's request bodies and their validation.

A ``Schema`` lists the fields a JSON body may carry; ``validate`` returns the body as a dict of
checked values or raises ``BodyError`` naming the field and a stable code. Client input never
reaches a handler unchecked: ``null``, an array or a scalar where an object belongs, an unknown
field, a missing one, a wrong type (``null`` included), an over-long string or an out-of-range
number are each refused with their own code::

    body_not_object  unknown_field  missing_field  wrong_type  too_long  out_of_range
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from callcenter.errors import CallcenterError


class BodyError(CallcenterError):
    """A request body refused by its schema (``field`` is ``""`` for the body as a whole)."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(message, code=code)
        self.field = field


_KINDS: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


@dataclass(frozen=True)
class Field:
    """One field: its name, kind (``string``, ``integer``, ``number``, ``boolean``), whether it
    must be present, and its bounds (string length, numeric range)."""

    name: str
    kind: str = "string"
    required: bool = False
    max_length: int = 200
    minimum: float | None = None
    maximum: float | None = None

    def check(self, value: Any) -> Any:
        kinds = _KINDS[self.kind]
        # bool is an int in Python; JSON keeps them apart, and so does the API.
        if not isinstance(value, kinds) or (isinstance(value, bool) and self.kind != "boolean"):
            got = "null" if value is None else type(value).__name__
            raise BodyError("wrong_type", self.name, f"{self.name!r} must be a {self.kind}, not {got}")
        if isinstance(value, str) and len(value) > self.max_length:
            raise BodyError(
                "too_long", self.name, f"{self.name!r} is longer than {self.max_length} characters"
            )
        if isinstance(value, int | float) and not isinstance(value, bool):
            if (self.minimum is not None and value < self.minimum) or (
                self.maximum is not None and value > self.maximum
            ):
                raise BodyError(
                    "out_of_range",
                    self.name,
                    f"{self.name!r} must be within [{self.minimum}, {self.maximum}]",
                )
        return value


@dataclass(frozen=True)
class Schema:
    """The fields a body may carry; any other field is refused."""

    fields: tuple[Field, ...] = ()

    def validate(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            got = "null" if data is None else type(data).__name__
            raise BodyError("body_not_object", "", f"the body must be a JSON object, not {got}")
        known = {f.name: f for f in self.fields}
        for key in data:
            if key not in known:
                raise BodyError("unknown_field", str(key), f"unknown field {key!r}")
        out: dict[str, Any] = {}
        for f in self.fields:
            if f.name in data:
                out[f.name] = f.check(data[f.name])
            elif f.required:
                raise BodyError("missing_field", f.name, f"{f.name!r} is required")
        return out


EMPTY = Schema()
"""A body that carries nothing (an empty body or ``{}``)."""
