"""handlers/terminal: real programs on real ptys, in-process (AsyncTestClient) and through a real host."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import sys
import time
from collections.abc import Awaitable

import anyio
import pyte
import pytest

from bridge import Bridge
from bridge.errors import BridgeError
from bridge.testing import AsyncTestClient
from bridge.builtins.terminal.plugin import plugin
from bridge.builtins.terminal.screen import Model, ParseBudget

import winpty_on_posix
from harness import Host, gone

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(os.name != "posix", reason="POSIX ptys")]

BASH = shutil.which("bash")
QUIET_BASH = ["--norc", "--noprofile"]


def app(**settings) -> Bridge:
    bridge = Bridge("terminal-test")
    bridge.include(plugin, settings={"commands": ["bash", sys.executable], **settings})
    return bridge


class Screen:
    """What a watcher has read so far: the text, in items as they came."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.items: list[dict] = []
        self.text = ""

    async def until(self, needle: str) -> str:
        while needle not in self.text:
            item = await self.stream.__anext__()
            self.items.append(item)
            self.text += item.get("data", "")
        return self.text


def running_in_foreground(pid: int, name: str) -> list[int]:
    """The children of ``pid`` once one runs ``name`` as the terminal's foreground group (job control has settled)."""
    kids = children(pid)
    for kid in kids:
        try:
            with open(f"/proc/{kid}/stat") as stat:
                comm, rest = stat.read().rsplit(")", 1)
        except OSError:
            continue
        fields = rest.split()  # state, ppid, pgrp, session, tty_nr, tpgid
        if comm.endswith(f"({name}") and fields[2] == fields[5]:
            return kids
    return []


async def poll(predicate, timeout: float = 10.0, what: str = "condition"):
    """``predicate()``'s value once truthy, tried every 10 ms (for what no message announces: /proc, counters)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, what
        await anyio.sleep(0.01)
    return value


async def bash(client, **params) -> dict:
    return await client.call("terminal.create", {"command": "bash", "args": QUIET_BASH, **params})


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as file:
        return [int(p) for p in file.read().split()]


async def test_stty_size_follows_a_resize_and_an_interrupt_stops_a_sleep():
    async with AsyncTestClient(app()) as client:
        t = await bash(client, rows=24, cols=80)
        assert t["command"] == os.path.abspath(BASH) and t["rows"] == 24
        async with client.stream("terminal.attach", {"id": t["id"]}) as stream:
            screen = Screen(stream)
            first = await stream.__anext__()
            assert set(first) == {"restore"} and first["restore"]["rows"] == 24
            assert await client.call("terminal.resize", {"id": t["id"], "rows": 33, "cols": 101})
            await client.call("terminal.write", {"id": t["id"], "data": "stty size\r"})
            await screen.until("33 101")

            await client.call("terminal.write", {"id": t["id"], "data": "sleep 60\r"})
            sleeper = await poll(lambda: running_in_foreground(t["pid"], "sleep"), what="sleep started")
            assert await client.call("terminal.signal", {"id": t["id"], "signal": "interrupt"})
            await poll(lambda: all(gone(p) for p in sleeper), what="sleep interrupted")
            await client.call("terminal.write", {"id": t["id"], "data": "echo after-$((40+2))\r"})
            await screen.until("after-42")
            [listed] = await client.call("terminal.list", {"ids": [t["id"]]})
            assert listed["state"] == "running" and listed["rows"] == 33 and listed["cols"] == 101
            assert listed["watchers"] == 1 and listed["bytes_in"] > 0 and listed["bytes_out"] > 0

            assert await client.call("terminal.kill", {"id": t["id"]})
            event = await client.wait_for_event("terminal.exited")
            assert event == {"id": t["id"], "exit_code": None, "signal": "SIGKILL", "$meta": {"to": [listed["owner"]]}}
            async for _ in stream:  # the stream ends once the terminal has exited
                pass
            assert stream.result is not None
        with pytest.raises(BridgeError) as exited:
            await client.call("terminal.write", {"id": t["id"], "data": "x"})
        assert exited.value.code == 4703
        with pytest.raises(BridgeError) as unknown:
            await client.call("terminal.resize", {"id": "t999", "rows": 1, "cols": 1})
        assert unknown.value.code == 4702


SPLIT = r"""
import sys, termios
attrs = termios.tcgetattr(0)
attrs[3] &= ~termios.ECHO  # the echo of the test's keystroke would land between the two bytes
termios.tcsetattr(0, termios.TCSANOW, attrs)
out = sys.stdout.buffer
out.write(b"A\xc3"); out.flush()
sys.stdin.readline()
out.write(b"\xa9B\n"); out.flush()
sys.stdin.readline()
"""


async def test_a_character_split_across_reads_arrives_whole():
    async with AsyncTestClient(app(coalesce_ms=0)) as client:
        # paused until attached: else "A" may be printed before the attach and come as the restore
        t = await client.call("terminal.create", {"command": sys.executable, "args": ["-c", SPLIT], "paused": True})
        async with client.stream("terminal.attach", {"id": t["id"]}) as stream:
            screen = Screen(stream)
            await stream.__anext__()  # the restore: attached
            await client.call("terminal.resume", {"id": t["id"]})
            await screen.until("A")
            await poll(lambda: plugin.state.by_id[t["id"]].bytes_out >= 2)
            assert "\ufffd" not in screen.text  # the lone first byte is held, not replaced
            await client.call("terminal.write", {"id": t["id"], "data": "\r"})
            text = await screen.until("B")
            assert "é" in text and "\ufffd" not in text
            assert not any(item.get("data") == "" for item in screen.items)
            await client.call("terminal.write", {"id": t["id"], "data": "\r"})
            await client.wait_for_event("terminal.exited")


RAINBOW = ("for i in $(seq 1 40); do printf '\\e[3%dmline %d \\e[1mbold\\e[0m wide 中\\n' $((i%8)) $i; done; "
           "echo END-$((1+1)); read x\r")


def rendered(text: str, rows: int, cols: int) -> pyte.Screen:
    screen = pyte.Screen(cols, rows)
    pyte.Stream(screen).feed(text)
    return screen


def cells(screen: pyte.Screen) -> list[list]:
    return [[screen.buffer[y][x] for x in range(screen.columns)] for y in range(screen.lines)]


async def test_a_second_watcher_gets_a_restore_of_what_the_first_sees():
    async with AsyncTestClient(app()) as client:
        t = await bash(client, rows=10, cols=60)
        async with client.stream("terminal.attach", {"id": t["id"]}) as first:
            screen = Screen(first)
            restore = (await first.__anext__())["restore"]
            await client.call("terminal.write", {"id": t["id"], "data": RAINBOW})
            await screen.until("END-2\r\n")  # then `read` waits: no more output
            async with client.stream("terminal.attach", {"id": t["id"]}) as second:
                late = (await second.__anext__())["restore"]
                assert (late["rows"], late["cols"]) == (10, 60)
                seen = rendered(restore["data"] + screen.text, 10, 60)
                restored = rendered(late["data"], 10, 60)
                assert restored.display == seen.display
                assert cells(restored) == cells(seen)  # colours and bold too
                assert (restored.cursor.x, restored.cursor.y) == (seen.cursor.x, seen.cursor.y)
                assert "line 1 " in late["data"]  # the scrollback came first
                [listed] = await client.call("terminal.list")
                assert listed["watchers"] == 2


STALL = "import sys\nwhile True: sys.stdout.write('x' * 1023 + '\\n')"


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def terminal_host(tmp_path, **settings) -> Host:
    (tmp_path / "terminal_app.py").write_text(
        "from bridge import Bridge\nfrom bridge.builtins.terminal.plugin import plugin\n\n"
        f"app = Bridge('terminal-test')\napp.include(plugin, settings={settings!r})\n")
    return Host("terminal_app:app", env={"PYTHONPATH": str(tmp_path), "BRIDGE_AUDIT_DIR": str(tmp_path / "audit")})


def listed(host: Host, id: str, n=[0]) -> dict:
    n[0] += 1
    return host.call("terminal.list", {"ids": [id]}, id=f"l{n[0]}")["result"][0]


def until(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.01)
    return value


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_stalled_reader_blocks_the_program_and_the_host_stays_flat(tmp_path):
    with terminal_host(tmp_path, commands=[sys.executable], chunk_bytes=4096) as host:
        host.recv()  # $/ready
        t = host.call("terminal.create", {"command": sys.executable, "args": ["-c", STALL]}, id="c")["result"]
        host.send({"jsonrpc": "2.0", "id": "a", "method": "terminal.attach",
                   "params": {"id": t["id"], "$meta": {"stream": {"window": 2}}}})
        host.recv_until(lambda m: m.get("method") == "$/stream" and m["params"]["id"] == "a")
        # two chunks of credit, then none: the host stops reading and the program blocks on its writes
        before = until(lambda: (info := listed(host, t["id"]))["bytes_out"] > 0 and info)["bytes_out"]
        # stalled: the count holds across 20 reads in a row (reads are round trips to the host)
        stalled = until(lambda: len({listed(host, t["id"])["bytes_out"] for _ in range(20)}) == 1
                        and listed(host, t["id"])["bytes_out"], what="output kept flowing")
        rss = rss_kb(host.proc.pid)
        window = time.monotonic() + 1.0  # an observation window, not a synchronisation
        while time.monotonic() < window:
            assert listed(host, t["id"])["bytes_out"] == stalled
        assert rss_kb(host.proc.pid) - rss < 4096
        assert stalled < 1 << 20 and stalled >= before
        host.send({"jsonrpc": "2.0", "method": "$/stream/credit", "params": {"id": "a", "credit": 10}})
        until(lambda: listed(host, t["id"])["bytes_out"] > stalled, what="reading did not resume")


async def test_a_terminal_is_its_creators_and_another_caller_cannot_find_use_or_hear_it():
    """Bob, another window, tries alice's terminal as an attacker would: every method answers as
    for an id that does not exist (4702, the same message), list hides it, the exit event is not
    his; shared with him by name, or with "*", he may use it."""
    alice, bob = {"window": 1}, {"window": 2}
    async with AsyncTestClient(app()) as client:
        t = await client.call("terminal.create", {"command": sys.executable, "args": ["-c", "input()"]}, caller=alice)
        tries = [("write", {"data": "x"}), ("resize", {"rows": 5, "cols": 5}), ("signal", {"signal": "interrupt"}),
                 ("kill", {}), ("pause", {}), ("resume", {}), ("list", None)]
        for method, extra in tries:
            params = {"ids": [t["id"]]} if extra is None else {"id": t["id"], **extra}
            for id_ in (t["id"], "t999"):
                with pytest.raises(BridgeError) as refused:
                    await client.call(f"terminal.{method}", {**params, **({"ids": [id_]} if extra is None else {"id": id_})},
                                      caller=bob)
                assert refused.value.code == 4702 and refused.value.message == f"no terminal {id_!r}"
        with pytest.raises(BridgeError) as refused:
            async with client.stream("terminal.attach", {"id": t["id"]}, caller=bob) as stream:
                await stream.__anext__()
        assert refused.value.code == 4702
        batch = await client.call("terminal.batch", {"operations": [{"op": "kill", "id": t["id"]}]}, caller=bob)
        assert batch["failed"] == 1 and batch["results"][0]["error"]["code"] == 4702
        assert await client.call("terminal.list", caller=bob) == []
        [listed] = await client.call("terminal.list", caller=alice)
        assert listed["owner"] == "window:1" and listed["state"] == "running"

        shared = await client.call("terminal.create", {"command": sys.executable, "args": ["-c", "input()"],
                                                       "share_with": ["window:2"]}, caller=alice)
        everyone = await client.call("terminal.create", {"command": sys.executable, "args": ["-c", "input()"],
                                                         "share_with": ["*"]}, caller=alice)
        assert {x["id"] for x in await client.call("terminal.list", caller=bob)} == {shared["id"], everyone["id"]}
        assert await client.call("terminal.write", {"id": shared["id"], "data": "hi\r"}, caller=bob)
        def exit_of(target: dict) -> Awaitable[dict]:
            return client.wait_for_event("terminal.exited", lambda e: e["id"] == target["id"])

        for target in (t, shared):
            assert await client.call("terminal.kill", {"id": target["id"]}, caller=alice)
        assert (await exit_of(t))["$meta"]["to"] == ["window:1"]
        assert (await exit_of(shared))["$meta"]["to"] == ["window:1", "window:2"]
        assert await client.call("terminal.kill", {"id": everyone["id"]}, caller=bob)
        assert "$meta" not in await exit_of(everyone)  # for every caller


async def test_rpc_metrics_reports_the_terminals():
    async with AsyncTestClient(app()) as client:
        assert (await client.call("rpc.metrics"))["plugins"]["terminal"]["running"] == 0
        t = await client.call("terminal.create", {"command": sys.executable, "args": ["-c", "input()"]})
        async with client.stream("terminal.attach", {"id": t["id"]}) as stream:
            await stream.__anext__()  # the restore: attached
            await client.call("terminal.write", {"id": t["id"], "data": "x"})
            await client.call("terminal.pause", {"id": t["id"]})
            seen = (await client.call("rpc.metrics"))["plugins"]["terminal"]
            assert seen["running"] == 1 and seen["created"] == 1 and seen["watchers"] == 1 and seen["paused"] == 1
            assert seen["bytesIn"] == 1 and seen["reading"] == 0
            await client.call("terminal.kill", {"id": t["id"]})
            await client.wait_for_event("terminal.exited")
        seen = (await client.call("rpc.metrics"))["plugins"]["terminal"]
        assert seen["running"] == 0 and seen["exited"] == 1 and seen["watchers"] == 0


async def test_fifty_terminals_at_once_written_in_a_batch_all_exit():
    async with AsyncTestClient(app(), timeout=30) as client:
        ids = [(await client.call("terminal.create", {"command": "bash", "args": [*QUIET_BASH, "-c", "read x"]}))["id"]
               for _ in range(50)]
        states = await client.call("terminal.list")
        assert len(states) == 50 and {s["state"] for s in states} == {"running"}
        result = await client.call("terminal.batch", {"operations": [
            *({"op": "write", "id": id, "data": "bye\r"} for id in ids),
            {"op": "write", "id": "nope", "data": "x"}, {"op": "resize", "id": ids[0], "rows": 0, "cols": 5}]})
        assert (result["total"], result["successful"], result["failed"]) == (52, 50, 2)
        assert result["results"][50]["error"]["code"] == 4702
        assert result["results"][51]["error"]["code"] == -32602
        await client.wait_until(lambda: len([e for e in client.events if e.method == "terminal.exited"]) == 50)
        exits = {e.params["id"]: e.params["exit_code"] for e in client.events if e.method == "terminal.exited"}
        assert exits == {id: 0 for id in ids}


async def test_too_many_terminals_is_4704():
    async with AsyncTestClient(app(max_terminals=1)) as client:
        await bash(client)
        with pytest.raises(BridgeError) as refused:
            await bash(client)
        assert refused.value.code == 4704 and refused.value.data == {"limit": 1}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_kill_9_of_the_host_leaves_no_terminal_process(tmp_path):
    with terminal_host(tmp_path, commands=["bash"]) as host:
        host.recv()
        t = host.call("terminal.create", {"command": "bash", "args": QUIET_BASH}, id="c")["result"]
        host.call("terminal.write", {"id": t["id"], "data": "sleep 300\r"}, id="w")
        sleeper = until(lambda: running_in_foreground(t["pid"], "sleep"), what="sleep started")
        host.proc.kill()
        host.wait()
        until(lambda: all(gone(p) for p in [t["pid"], *sleeper]), what="a terminal process outlived its host")


def test_a_command_not_allowed_is_refused_with_4701_and_audited_and_terminals_end_with_the_host(tmp_path):
    with terminal_host(tmp_path, commands=["bash"]) as host:
        host.recv()
        refused = host.call("terminal.create", {"command": "ls"}, id="c")["error"]
        assert refused["code"] == 4701 and refused["data"]["reason"] == "not_allowed"
        env = host.call("terminal.create", {"command": "bash", "env": {"LD_PRELOAD": "x"}}, id="e")["error"]
        assert env["code"] == 4701 and env["data"]["reason"] == "env"
        assert host.call("terminal.list", id="l")["result"] == []
        t = host.call("terminal.create", {"command": "bash", "args": QUIET_BASH}, id="ok")["result"]
        host.call("terminal.write", {"id": t["id"], "data": "sleep 300\r"}, id="w")
        sleeper = until(lambda: running_in_foreground(t["pid"], "sleep"), what="sleep started")
        host.close_stdin()
        assert host.wait() == 0
        assert all(gone(p) for p in [t["pid"], *sleeper])  # the host's stop killed the terminal's session
    audit = "".join(p.read_text() for p in (tmp_path / "audit").iterdir())
    assert '"terminal.refused"' in audit and '"ls"' in audit and "LD_PRELOAD" in audit
    assert '"terminal.created"' in audit


async def test_no_commands_configured_refuses_everything():
    bridge = Bridge("terminal-test")
    bridge.include(plugin)
    async with AsyncTestClient(bridge) as client:
        with pytest.raises(BridgeError) as refused:
            await client.call("terminal.create", {"command": "bash"})
        assert refused.value.code == 4701


FLOOD = "import sys\nfor i in range(2000): sys.stdout.write(f'{i:07d}' + 'y' * 1016 + '\\n')\nsys.stdout.flush()\ninput()"


async def test_a_drop_terminal_keeps_reading_and_says_what_a_slow_watcher_lost():
    async with AsyncTestClient(app(chunk_bytes=4096)) as client:
        t = await client.call("terminal.create", {"command": sys.executable, "args": ["-c", FLOOD], "overflow": "drop",
                                                  "paused": True})
        async with client.stream("terminal.attach", {"id": t["id"]}, window=1) as stream:
            assert "restore" in await stream.__anext__()
            await client.call("terminal.resume", {"id": t["id"]})  # all of it goes past this watcher
            # no credit now: the host keeps reading all 2000 lines (2 MB), holding at most 4 chunks
            await poll(lambda: plugin.state.by_id[t["id"]].bytes_out >= 2000 * 1025)
            items = []
            while not any("dropped" in item for item in items):
                items.append(await stream.__anext__())
            dropped = next(item["dropped"] for item in items if "dropped" in item)
            [listed] = await client.call("terminal.list", {"ids": [t["id"]]})
            assert dropped > 1 << 20 and listed["dropped"] == dropped
            text = ""
            while "1999" not in text:  # the newest output is kept
                text += (await stream.__anext__()).get("data", "")
            await client.call("terminal.kill", {"id": t["id"]})


async def test_pause_stops_reading_and_resume_restarts_it():
    async with AsyncTestClient(app()) as client:
        t = await bash(client)
        async with client.stream("terminal.attach", {"id": t["id"]}) as stream:
            screen = Screen(stream)
            assert await client.call("terminal.pause", {"id": t["id"]})
            [listed] = await client.call("terminal.list", {"ids": [t["id"]]})
            assert listed["paused"] and not plugin.state.by_id[t["id"]].reading
            await client.call("terminal.write", {"id": t["id"], "data": "echo resumed-$((6*7))\r"})
            assert await client.call("terminal.resume", {"id": t["id"]})
            await screen.until("resumed-42")
        raw = client.stream("terminal.attach", {"id": t["id"], "raw": True})
        async with raw:
            assert "restore" in await raw.__anext__()
            await client.call("terminal.write", {"id": t["id"], "data": "echo é\r"})
            seen = b""
            while "é".encode() not in seen:
                item = await raw.__anext__()
                seen += base64.b64decode(item["data_base64"])
        with pytest.raises(BridgeError) as bad:
            await client.call("terminal.write", {"id": t["id"], "data": "x", "data_base64": "eA=="})
        assert bad.value.code == -32602


async def test_created_paused_a_watcher_attached_before_resume_gets_every_byte():
    """Output printed between create and attach reaches a watcher only as the restore; created
    paused, the pty is not read until resume, so an attached watcher gets all of it as data."""
    lines = 3000
    program = f"import sys\nfor i in range({lines}): sys.stdout.write('%07d\\n' % i)\nsys.stdout.flush()"
    async with AsyncTestClient(app(), timeout=60) as client:
        t = await client.call("terminal.create", {"command": sys.executable, "args": ["-c", program], "paused": True})
        [listed] = await client.call("terminal.list", {"ids": [t["id"]]})
        assert listed["paused"] and listed["bytes_out"] == 0
        async with client.stream("terminal.attach", {"id": t["id"]}) as stream:
            assert "0000000" not in (await stream.__anext__())["restore"]["data"]  # nothing read yet
            assert await client.call("terminal.resume", {"id": t["id"]})
            text = "".join([item["data"] async for item in stream])
        assert text == "".join("%07d\r\n" % i for i in range(lines))


async def test_the_windows_pty_reads_in_a_thread_paced_by_the_terminal_and_ends_with_the_exit_code(monkeypatch):
    """pty_windows.WindowsPty cannot run on Windows here: it runs over pywinpty's PTY API backed by
    a real POSIX pty (winpty_on_posix.py), so its reader thread, pacing, writes and exit are real."""
    monkeypatch.setitem(sys.modules, "winpty", winpty_on_posix)
    from bridge.builtins.terminal.pty_windows import WindowsPty

    chunks: list[bytes] = []
    ended = asyncio.Event()
    pty = WindowsPty(chunks.append, ended.set, 4096)
    program = ("import sys\nprint(input().upper())\nfor i in range(2000): sys.stdout.write('%079d\\n' % i)\n"
               "sys.stdout.flush()\nsys.exit(3)")
    assert await pty.spawn([sys.executable, "-c", program], os.getcwd(), dict(os.environ), 24, 80) > 0
    await pty.write("héllo\r".encode())
    window = time.monotonic() + 0.5  # an observation window, not a synchronisation: nothing may arrive
    while time.monotonic() < window:
        await asyncio.sleep(0.05)
        assert chunks == [] and pty._pty.isalive()  # not reading: the output waits, the program blocks
    pty.set_reading(True)
    await asyncio.wait_for(ended.wait(), 20)
    text = b"".join(chunks).decode()
    assert "HÉLLO\r\n" in text and text.endswith("%079d\r\n" % 1999)
    assert await asyncio.wait_for(pty.wait(), 10) == (3, None)
    pty.close()


SCROLL_FLOOD = "import sys\nfor i in range(20000): sys.stdout.write('line %05d ' % i + 'x' * 60 + '\\n')\nsys.stdout.flush()\ninput()"


async def test_a_flood_streams_past_the_screen_model_and_a_restore_still_shows_the_screen():
    """Past the host's parse budget for a second the screen model stops parsing (output is not held up by it)
    and the next restore rebuilds it from the kept tail: the same screen as the full output's."""
    async with AsyncTestClient(app(), timeout=60) as client:
        t = await client.call("terminal.create", {"command": sys.executable, "args": ["-c", SCROLL_FLOOD], "rows": 10,
                                                  "cols": 80})
        async with client.stream("terminal.attach", {"id": t["id"]}, window=64) as first:
            screen = Screen(first)
            restore = (await first.__anext__())["restore"]
            await screen.until("line 19999 " + "x" * 60 + "\r\n")  # the last line, whole
            model = plugin.state.by_id[t["id"]].model
            assert model.stale  # the flood went past the screen model
            async with client.stream("terminal.attach", {"id": t["id"]}) as second:
                late = (await second.__anext__())["restore"]
            assert model.rebuilds == 1 and not model.stale
        seen = rendered(restore["data"] + screen.text, 10, 80)
        restored = rendered(late["data"], 10, 80)
        assert restored.display == seen.display
        assert restored.display[-2].startswith("line 19999 ")
        assert len(screen.text) > 1_400_000  # 20,000 lines of 73 characters went through the stream


def test_the_parse_budget_is_the_hosts_not_each_terminals():
    """Two screens each under the budget alone, over it together: the one that went over stops
    parsing (and is rebuilt from its tail when asked), the other keeps its parsed screen; a new
    second gives a new budget."""
    budget = ParseBudget(1000)
    first, second = Model(5, 40, 4096, budget), Model(5, 40, 4096, budget)
    text = "\r\n".join(["y" * 39] * 15)  # 15 lines of 39 characters: 613 characters
    first.feed(text, now=10.0)
    second.feed(text, now=10.5)
    assert not first.stale and second.stale
    assert second.restore()["data"] == first.restore()["data"] and second.rebuilds == 1
    second.feed("z", now=11.0)  # the next second
    assert not second.stale


async def test_a_keystrokes_echo_is_sent_at_once_not_held_for_coalescing():
    """Output under 1 KiB goes out at once even right after other output: with a 3 s coalescing
    window, ten keystrokes typed back to back are all echoed well inside one window."""
    async with AsyncTestClient(app(coalesce_ms=3000), timeout=30) as client:
        t = await client.call("terminal.create", {"command": sys.executable, "args": ["-c", "input()"]})
        async with client.stream("terminal.attach", {"id": t["id"]}, window=1000) as stream:
            screen = Screen(stream)
            await stream.__anext__()  # the restore
            started = time.monotonic()
            for ch in "abcdefghij":
                await client.call("terminal.write", {"id": t["id"], "data": ch})
                await screen.until(ch)  # the tty's echo
            assert time.monotonic() - started < 1.5  # not one 3 s window, let alone ten
