"""Shell: the static pages the controller serves (read once from the package's ``web/static``)."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def page(name: str) -> bytes:
    """The bytes of ``web/static/<name>`` (an HTML page shipped with the package)."""
    return resources.files("callcenter.web").joinpath("static", name).read_bytes()
