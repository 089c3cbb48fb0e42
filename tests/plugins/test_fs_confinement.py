"""handlers/fs through a real host: reads stay inside the roots against symlink races and special files,
and an app that names no roots gets a clear refusal."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from harness import Host

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX file kinds")


def fs_host(tmp_path, *roots, **settings) -> Host:
    lines = ["[plugins.fs]"]
    if roots:
        lines.append(f"roots = {json.dumps([str(r) for r in roots])}")
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    config = tmp_path / "bridge.toml"
    config.write_text("\n".join(lines) + "\n")
    host = Host("--plugin", "fs", "--config", str(config))
    host.recv()  # ready
    return host


@pytest.fixture
def tree(tmp_path):
    """tmp/root/{note.txt, d/f.txt}, tmp/outside/{secret.txt, d/f.txt}."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "d").mkdir(parents=True)
    (outside / "d").mkdir(parents=True)
    (root / "note.txt").write_text("inside")
    (root / "d" / "f.txt").write_text("inside")
    (outside / "secret.txt").write_text("SECRET")
    (outside / "d" / "f.txt").write_text("SECRET")
    return tmp_path


def test_a_symlink_swapped_during_reads_never_yields_content_outside_the_root(tree):
    root, outside = tree / "root", tree / "outside"
    stop, swaps = threading.Event(), []

    def swap() -> None:
        # root/note.txt flips between a file and a symlink out; root/d between a directory and a symlink out.
        while not stop.is_set():
            os.symlink(outside / "secret.txt", root / ".link")
            os.replace(root / ".link", root / "note.txt")
            os.rename(root / "d", root / ".d")
            os.symlink(outside / "d", root / "d")
            (root / ".file").write_text("inside")
            os.replace(root / ".file", root / "note.txt")
            os.unlink(root / "d")
            os.rename(root / ".d", root / "d")
            swaps.append(1)

    with fs_host(tree, root) as host:
        swapper = threading.Thread(target=swap)
        swapper.start()
        escapes = served = 0
        try:
            for batch in range(20):  # 2,000 reads, 100 in flight at a time
                ids = [f"{batch}-{i}" for i in range(100)]
                host.send(*({"jsonrpc": "2.0", "id": id, "method": "fs.read_text",
                             "params": {"path": str(root / ("note.txt" if i % 2 else "d/f.txt"))}}
                            for i, id in enumerate(ids)))
                replies = [host.recv() for _ in ids]  # in any order
                assert sorted(r["id"] for r in replies) == sorted(ids)
                escapes += sum("SECRET" in json.dumps(r) for r in replies)
                served += sum(r.get("result") == "inside" for r in replies)
        finally:
            stop.set()
            swapper.join(10)
    assert escapes == 0
    assert served > 0 and len(swaps) > 10  # the race was run, not refused wholesale


def refusal(host: Host, method: str, path: str, id: str = "r") -> dict:
    """The error of ``method`` on ``path``, answered within a few seconds (a FIFO must not block a worker)."""
    started = time.monotonic()
    host.send({"jsonrpc": "2.0", "id": id, "method": method, "params": {"path": path}})
    reply, _ = host.recv_until(lambda m: m.get("id") == id and "method" not in m, timeout=5)
    assert time.monotonic() - started < 5
    assert "error" in reply, reply
    return reply["error"]


def test_fifos_devices_and_proc_files_are_refused_promptly(tree):
    root = tree / "root"
    os.mkfifo(root / "fifo")
    with fs_host(tree, root, "/dev", "/proc/self", max_read_bytes=1 << 20) as host:
        for method in ("fs.read_text", "fs.read_lines"):
            for path in (root / "fifo", "/dev/zero", "/proc/self/environ", "/proc/self/status", root):
                error = refusal(host, method, str(path))
                assert error["code"] == 4301 and error["data"]["reason"] == "irregular", (method, path, error)
                assert "not a regular file" in error["message"] or "more than its size" in error["message"]
        assert host.call("fs.read_text", {"path": str(root / "note.txt")}, id="ok")["result"] == "inside"


def test_reads_are_bounded_by_the_bytes_read(tree):
    root = tree / "root"
    (root / "big.txt").write_text("x" * 2000)
    (root / "long.txt").write_text("short\n" + "y" * 2000 + "\n")
    (root / "exact.txt").write_text("z" * 1000)
    with fs_host(tree, root, max_read_bytes=1000) as host:
        assert refusal(host, "fs.read_text", str(root / "big.txt"))["code"] == 4304
        assert host.call("fs.read_text", {"path": str(root / "exact.txt")}, id=2)["result"] == "z" * 1000
        error = refusal(host, "fs.read_lines", str(root / "long.txt"), id="lines")
        assert error["code"] == 4304 and "line" in error["message"]


def test_an_app_that_names_no_roots_gets_a_clear_error_on_every_call(tmp_path):
    (tmp_path / "note.txt").write_text("x")
    with fs_host(tmp_path) as host:
        host.wait_stderr(b"no roots")
        for id, (method, params) in enumerate([
            ("fs.read_text", {"path": str(tmp_path / "note.txt")}), ("fs.read_lines", {"path": "/etc/hostname"}),
            ("fs.stat", {"path": "."}), ("fs.list", {"path": "/"}), ("fs.watch", {"paths": ["."]}),
        ]):
            error = host.call(method, params, id=id)["error"]
            assert error["code"] == 4305 and "roots" in error["message"], (method, error)
        assert host.call("rpc.ping", id="p")["result"] is not None  # the host serves the rest


def test_refusals_say_nothing_about_what_lies_outside(tree):
    root, outside = tree / "root", tree / "outside"
    os.symlink(outside / "secret.txt", root / "to_secret")
    os.symlink(outside / "missing.txt", root / "to_missing")
    os.symlink(outside, root / "to_outside")
    os.symlink("/proc/self/environ", root / "to_proc")

    def error(path, method="fs.read_text"):
        e = host.call(method, {"path": str(path)}, id=str(path))["error"]
        message = e["message"].replace(repr(str(path)), "PATH")  # the caller's own path is named, nothing else
        assert str(outside) not in message and "secret" not in message and "environ" not in message
        assert e["data"] == {"path": str(path), "reason": e["data"]["reason"]}
        return e["code"], e["data"]["reason"], message

    with fs_host(tree, root) as host:
        for method in ("fs.read_text", "fs.stat", "fs.list", "fs.read_lines"):
            for exists, missing in [(outside / "secret.txt", outside / "missing.txt"),
                                    (root / "to_secret", root / "to_missing"),
                                    (root / "to_outside" / "secret.txt", root / "to_outside" / "missing.txt"),
                                    (f"{root}/../outside/secret.txt", f"{root}/../outside/missing.txt"),
                                    ("/proc/self/environ", "/proc/self/nope")]:
                assert error(exists, method) == error(missing, method), (method, exists)
        assert error(root / "to_proc")[1] == "symlink"
        assert error("/proc/self/environ")[1] == "outside"


def test_a_watch_does_not_report_changes_behind_a_symlink_out_of_the_root(tree):
    root, outside = tree / "root", tree / "outside"
    os.symlink(outside / "d", root / "out")  # the notify engine follows it into outside/d
    with fs_host(tree, root) as host:
        sub = host.call("fs.watch", {"paths": [str(root)], "debounce_ms": 20}, id="w")["result"]
        (outside / "d" / "hidden.txt").write_text("x")
        (root / "d" / "seen.txt").write_text("x")
        reported: list[str] = []
        while str(root / "d" / "seen.txt") not in reported:
            event, _ = host.recv_until(lambda m: m.get("method") == "fs.changed")
            assert event["params"]["subscription"] == sub
            reported += [change["path"] for change in event["params"]["changes"]]
        assert not [path for path in reported if "hidden" in path]
