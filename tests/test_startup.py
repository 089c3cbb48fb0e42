"""What start-up leaves out or puts off (issue 17) still behaves as before: collection is back on
once the host serves, the command line built for one command reads it as the full one does, and
registration's quick reading of annotations resolves names as ``eval`` would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import Bridge
from bridge.methods import Method

GC_APP = '''
import gc

from bridge import Bridge

app = Bridge()


@app.method
async def collection() -> dict:
    return {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}
'''


def test_the_host_serves_with_collection_on_and_its_start_up_frozen(tmp_path: Path) -> None:
    """`bridge serve` turns collection off while it loads (cli.main), and back on to serve."""
    from harness import Host

    app = tmp_path / "gc_app.py"
    app.write_text(GC_APP)
    with Host(str(app), "--no-plugins", "--no-audit") as host:
        host.recv()  # $/ready
        state = host.call("collection", id=1)["result"]
    assert state["enabled"] is True
    assert state["frozen"] > 10_000  # the modules and the app, loaded with collection off


LAZY_APP = '''
import sys
import threading

from bridge import Bridge

app = Bridge()
released = threading.Event()


@app.method
async def loaded() -> bool:
    """Whether anyio's event-loop backend is loaded."""
    return "anyio._backends._asyncio" in sys.modules


@app.method
def hold() -> str:
    """A sync handler: it holds its worker thread until ``release``."""
    released.wait(10)
    return "held"


@app.method
async def release() -> None:
    released.set()


@app.method
async def workers() -> dict:
    from anyio import to_thread

    stats = to_thread.current_default_thread_limiter().statistics()
    return {"total": stats.total_tokens, "busy": stats.borrowed_tokens, "waiting": stats.tasks_waiting}
'''


def test_the_first_calls_are_served_before_anyio_loads_and_max_threads_bounds_sync_handlers(tmp_path: Path) -> None:
    """The host's own lifetime is plain asyncio: an app with no hooks, lifespans or sync handler
    never loads anyio's backend (a fifth of start-up). Worker threads are sized by --max-threads
    on first use: of three sync calls, two run and one waits for a thread."""
    from harness import Host

    app = tmp_path / "lazy_app.py"
    app.write_text(LAZY_APP)
    with Host(str(app), "--no-plugins", "--no-audit", "--max-threads", "2") as host:
        host.recv()  # $/ready
        assert host.call("loaded", id=1)["result"] is False
        host.send(*({"jsonrpc": "2.0", "id": 10 + i, "method": "hold"} for i in range(3)))
        for attempt in range(1000):  # until the three calls have reached the limiter
            workers = host.call("workers", id=100 + attempt)["result"]
            if workers["busy"] + workers["waiting"] == 3:
                break
        assert workers == {"total": 2, "busy": 2, "waiting": 1}
        assert host.call("loaded", id=2)["result"] is True
        host.send({"jsonrpc": "2.0", "id": 3, "method": "release"})
        held = {}
        while len(held) < 3:
            message = host.recv()
            if message.get("id") in (10, 11, 12):
                held[message["id"]] = message["result"]
        assert held == {10: "held", 11: "held", 12: "held"}


def test_importing_bridge_leaves_collection_as_it_was() -> None:
    import subprocess

    from harness import ROOT, python

    done = subprocess.run([python(), "-c", "import gc; frozen = gc.get_freeze_count(); import bridge, bridge.cli; "
                           "print(gc.isenabled(), gc.get_freeze_count() - frozen)"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "0"]


_SERVE_ARGS = st.lists(st.sampled_from([
    "--framing", "ndjson", "--max-inflight", "12", "--debug", "--no-ready", "--no-audit", "--cache-size", "1MiB",
    "--plugin", "demo", "--no-plugins", "--loop", "asyncio", "--log-level", "warning", "--config", "x.toml",
]), max_size=8)


@settings(max_examples=60, deadline=None)
@given(_SERVE_ARGS, st.sampled_from(["serve", "discover", "types", "cache", "bundle"]))
def test_the_parser_of_one_command_reads_as_the_full_one(flags: list[str], command: str) -> None:
    """``_parser(command)`` adds only that command's arguments; a command line for it reads the same
    (or fails the same) as with every command's."""
    from bridge.cli import _parser

    argv = [command, "app:app", *flags] if command != "cache" else [command, "where", "app:app", *flags]

    def parsed(parser: Any) -> Any:
        try:
            args = vars(parser.parse_args(argv))
        except SystemExit as exc:
            return ("exit", exc.code)
        args.pop("parser", None)  # each its own ArgumentParser
        return args

    assert parsed(_parser(command)) == parsed(_parser())


def test_every_command_is_listed_whichever_is_built() -> None:
    from bridge.cli import _parser

    def commands(parser: Any) -> list[str]:
        return next(list(a.choices) for a in parser._actions if getattr(a, "choices", None))

    assert commands(_parser("serve")) == commands(_parser()) == ["serve", "discover", "types", "plugins", "cache", "bundle"]


def test_a_name_no_module_defines_fails_at_registration() -> None:
    app = Bridge()
    namespace: dict[str, Any] = {"__builtins__": __builtins__}
    exec("async def handler(a: 'Missing') -> int: ...", namespace)
    with pytest.raises(TypeError, match="handler: cannot read type hints: name 'Missing' is not defined"):
        app.add_method(namespace["handler"])


def test_a_module_name_shadows_a_builtin_in_annotations() -> None:
    namespace: dict[str, Any] = {"__builtins__": __builtins__, "int": str}
    exec("async def handler(a: 'int') -> 'int': ...", namespace)
    method = Method(namespace["handler"], "m")
    assert method.params[0].annotation is str and method.return_type is str


def test_a_docstring_is_the_description_cleaned_when_first_read() -> None:
    import inspect

    async def documented(a: int) -> int:
        """Add one.

            Indented further.
        """
        return a + 1

    assert Method(documented, "m").description == inspect.cleandoc(documented.__doc__ or "")
    assert Method(documented, "m").description.startswith("Add one.\n\n")  # type: ignore[union-attr]
    assert Method(documented, "m", description="given").description == "given"
    assert Method(lambda: None, "m").description is None


@pytest.mark.anyio
async def test_lifespans_start_with_worker_threads_sized_by_max_threads() -> None:
    """Where anyio is loaded for hooks and lifespans anyway, its thread limiter is sized before
    they run: a plugin's own ``to_thread`` calls are bounded by --max-threads from the start."""
    from contextlib import asynccontextmanager

    from anyio import to_thread

    from bridge.testing import AsyncTestClient

    seen: list[float] = []

    @asynccontextmanager
    async def lifespan(app: Bridge):  # type: ignore[no-untyped-def]
        seen.append(to_thread.current_default_thread_limiter().total_tokens)
        yield

    app = Bridge(lifespan=lifespan)

    @app.method
    async def ping() -> str:
        return "pong"

    async with AsyncTestClient(app, max_threads=3) as client:
        assert await client.call("ping") == "pong"
    assert seen == [3]
