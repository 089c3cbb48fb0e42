"""An example sidecar app: what a desktop app's Python side looks like with bridge.

Serve it with ``python -m bridge serve examples.app:app``; ``examples/demo.mjs`` does that
from Node and calls it.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import anyio
from pydantic import BaseModel, Field

from bridge import Bridge, BridgeError, Context

app = Bridge("notes-example", "1.0.0", description="A small note store with events and progress.")

NOTE_NOT_FOUND = 4004


class NoteIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    body: str = ""
    tags: list[str] = []


class Note(NoteIn):
    id: int
    created: dt.datetime


notes: dict[int, Note] = {}


@app.on_startup
def seed() -> None:
    notes.clear()
    save_note(NoteIn(title="Welcome", body="Served by the Python sidecar.", tags=["hello"]))


def save_note(note: NoteIn) -> Note:
    saved = Note(id=len(notes) + 1, created=dt.datetime.now(dt.UTC), **note.model_dump())
    notes[saved.id] = saved
    return saved


@app.method("math.add")
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@app.method("notes.create")
async def create(note: NoteIn, ctx: Context) -> Note:
    """Store a note and tell every listener with a ``notes.changed`` event."""
    saved = save_note(note)
    ctx.notify("notes.changed", {"id": saved.id, "action": "created"})
    return saved


@app.method("notes.get")
async def get(id: int) -> Note:
    """One note by id; error 4004 if there is none."""
    if id not in notes:
        raise BridgeError(NOTE_NOT_FOUND, f"no note with id {id}", {"id": id})
    return notes[id]


@app.method("notes.list")
async def list_notes(tag: str | None = None) -> list[Note]:
    """Every note, or those with ``tag``."""
    return [n for n in notes.values() if tag is None or tag in n.tags]


@app.method("notes.digest")
def digest(rounds: int, ctx: Context) -> str:
    """CPU work in a worker thread, reporting progress, stopping early if cancelled."""
    value = b"".join(n.body.encode() for n in notes.values())
    for i in range(rounds):
        if ctx.cancelled:
            break
        value = hashlib.sha256(value).digest()
        if (i + 1) % max(rounds // 4, 1) == 0:
            ctx.progress(done=i + 1, total=rounds)
    return value.hex()


@app.method("notes.export")
async def export(ctx: Context, repeat: int = 1, delay: float = 0.0):
    """Stream every note's title (``repeat`` times over), as ``$/stream`` chunks with progress."""
    ctx.total = len(notes) * repeat
    for _ in range(repeat):
        for note in list(notes.values()):
            if delay:
                await anyio.sleep(delay)
            yield note.title


@app.method("notes.sync", timeout=30.0)
async def sync(seconds: float = 10.0) -> str:
    """A slow call (think: a network sync) that the app may cancel."""
    await anyio.sleep(seconds)
    return "synced"
