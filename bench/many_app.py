"""Apps of many methods for bench/many.py: ``bench.many_app:plain_10``, ``plain_10000`` (each
method ``m<i>(a: int, b: str = "") -> int``: params pydantic need not see) and ``models_10``,
``models_10000`` (``m<i>(item: Item) -> int``: a model param, which needs pydantic). Built
when named, so a spawn builds only its own."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from bridge import Bridge


class Item(BaseModel):
    id: int
    name: str = ""


def _plain_handler(i: int) -> Any:
    async def handler(a: int, b: str = "") -> int:
        return a + i
    return handler


def _model_handler(i: int) -> Any:
    async def handler(item: Item) -> int:
        return item.id + i
    return handler


def __getattr__(name: str) -> Bridge:
    kind, _, count = name.partition("_")
    make = {"plain": _plain_handler, "models": _model_handler}.get(kind)
    if make is None or not count.isdigit():
        raise AttributeError(name)
    app = Bridge(name)
    for i in range(int(count)):
        app.add_method(make(i), f"m{i}")
    return app
