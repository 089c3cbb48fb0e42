"""The app whose TypeScript client_js/test/typegen.test.mjs generates, compiles against and runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from bridge import Bridge, BridgeError, Context, Plugin
from bridge.discovery import ErrorData

app = Bridge("notes", "1.0.0")


class Color(str, Enum):
    red = "red"
    green = "green"


class Tag(BaseModel):
    name: str
    color: Color = Color.red


class Note(BaseModel):
    """A note: the models, enums, optionals, lists, dicts and datetimes of a real app."""

    title: str
    body: str | None = None
    tags: list[Tag] = []
    created: datetime
    counts: dict[str, int] = {}
    kind: Literal["text", "todo"] = "text"
    parent: Note | None = None


class Circle(BaseModel):
    kind: Literal["circle"] = "circle"
    radius: float


class Square(BaseModel):
    kind: Literal["square"] = "square"
    side: float


class FieldError(BaseModel):
    field: str


class NoteSaved(BaseModel):
    title: str
    at: datetime


app.event("notes.saved", NoteSaved, description="A note was saved.")


@app.method("notes.save")
def save(note: Note, ctx: Context) -> Annotated[Note, ErrorData(4001, FieldError, "a note needs a title")]:
    """Save a note; tells every window with notes.saved."""
    if not note.title:
        raise BridgeError(4001, "a note needs a title", {"field": "title"})
    ctx.notify("notes.saved", {"title": note.title, "at": note.created.isoformat()})
    return note


@app.method("notes.find")
async def find(query: str, limit: int = 10, color: Color | None = None) -> list[Note]:
    """Notes whose title starts with ``query``."""
    return [Note(title=f"{query}{i}", created=datetime(2024, 1, 2, 3, 4, 5), counts={"words": i},
                 tags=[Tag(name="t", color=color or Color.green)]) for i in range(min(limit, 2))]


@app.method("notes.export")
async def export(prefix: str, count: int = 3) -> AsyncIterator[Tag]:
    """Stream ``count`` tags."""
    for i in range(count):
        yield Tag(name=f"{prefix}{i}")


@app.method("math.total")
def total(*numbers: float) -> float:
    return sum(numbers)


@app.method("shapes.area")
def area(shape: Annotated[Circle | Square, Field(discriminator="kind")]) -> float:
    return 3.0 * shape.radius ** 2 if isinstance(shape, Circle) else shape.side ** 2


@app.method("pairs.swap")
def swap(pair: tuple[int, str], /) -> tuple[str, int]:
    return pair[1], pair[0]


clock = Plugin("clock")


class Tick(BaseModel):
    at: datetime
    n: int


clock.event("ticked", Tick)


@clock.method("now")
def now() -> datetime:
    return datetime(2024, 5, 6, 7, 8, 9)


app.include(clock)
