"""Benchmark: ``state`` on Redis against the same Redis driven directly with redis-py, in one run
(a benchmark, not a test: it prints figures and PASS/MISS beside the targets and exits 0 unless
something is wrong; a wrong reply or a patch missing at the end is an error, exit 1).

It starts its own ``redis-server`` (tests/redis_server.py's ``RedisServer``, imported from
tests/: the same free port, temporary directory, no persistence) and its own hosts,
``python -m bridge serve bridge.builtins.demo:app --plugin state`` over NDJSON pipes, driven by
this process (asyncio), and measures:

- the floor: a Lua compare-and-append (the document's version checked, a stream entry added,
  the head's version set, a hint published) with redis-py, one at a time and pipelined, read
  back from a second connection; its fan-out round trip (append on one connection, the hint
  seen and the entry read with XRANGE on two others);
- patches/s with 1, 2 and 4 hosts writing one shared document (one client per host, one at a
  time and pipelined), and pipelined over 8 documents per host; every acknowledged patch is
  checked present exactly once at the end from a host that did not write it;
- fan-out: a patch acknowledged on host A to ``state.changed`` at a client of host B;
- catch-up of 10,000 versions: ``state.subscribe {since_version: 0, compact: false}`` on a host
  that never read the document (hosts with ``history = 10000``), and with the default history;
- Redis memory per document after N patches with ``history`` and ``snapshot_every`` at their
  defaults (MEMORY USAGE of its keys; the idempotency keys of its patches apart);
- the embedded SQLite backend beside them (1 host, the same patches).

    .venv/bin/python bench/state_redis.py [--quick] [--json out.json] [--patches N] ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import redis
from redis import asyncio as aioredis

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the tests' redis-server helper, reused as it is
sys.path.insert(0, str(REPO))

from redis_server import RedisServer  # noqa: E402  (tests/redis_server.py)

from bridge.builtins.state.patches import apply  # noqa: E402
from bridge.builtins.state.redis_backend import Keys  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
BUCKETS = 100

# The floor's compare-and-append: what the host's APPEND script does for a patch, less the
# idempotency key, the snapshot and the trimming.
FLOOR_APPEND = """
local v = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if v ~= tonumber(ARGV[1]) then return {0, v} end
v = v + 1
redis.call('XADD', KEYS[2], '1-' .. v, 'ops', ARGV[2])
redis.call('HSET', KEYS[1], 'version', v)
redis.call('PUBLISH', ARGV[3], '1 ' .. v .. ' floor')
return {1, v}
"""


def ns() -> int:
    return time.perf_counter_ns()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


class Failure(Exception):
    """A wrong reply, a missing or doubled patch: the figures would mean nothing."""


def check(ok: bool, what: str) -> None:
    if not ok:
        raise Failure(what)


# ---- the floor -----------------------------------------------------------------------------

def floor_throughput(port: int, n_seq: int, n_pipe: int, window: int, modes: tuple[str, ...] = ("seq", "pipe")
                     ) -> dict[str, Any]:
    """Compare-and-append one at a time and pipelined (sync redis-py, the cheapest client path),
    each checked; then read back from a second connection: every append present once."""
    out: dict[str, Any] = {}
    for mode, n in [(m, n) for m, n in (("seq", n_seq), ("pipe", n_pipe)) if m in modes]:
        tag = f"{{floor-{mode}-{uuid.uuid4().hex[:6]}}}"
        head, log, channel = f"fl:{tag}:head", f"fl:{tag}:log", "fl:changed"
        writer, reader = redis.Redis(port=port), redis.Redis(port=port)
        script = writer.register_script(FLOOR_APPEND)
        script(keys=[head, log], args=[99, "x", channel])  # loads the script (refused: version 0)
        ops = [orjson.dumps([{"op": "add", "path": f"/b{i % BUCKETS}/n{i}", "value": i}]) for i in range(n)]
        lat: list[float] = []
        with RedisStats(reader) as stats:
            cpu0, t0 = time.process_time(), ns()
            if mode == "seq":
                for i in range(n):
                    s = ns()
                    r = script(keys=[head, log], args=[i, ops[i], channel])
                    lat.append((ns() - s) / 1e3)
                    check(r == [1, i + 1], f"floor append {i}: {r}")
            else:
                for start in range(0, n, window):
                    pipe = writer.pipeline(transaction=False)
                    for i in range(start, min(n, start + window)):
                        script(keys=[head, log], args=[i, ops[i], channel], client=pipe)
                    for i, r in zip(range(start, n), pipe.execute()):
                        check(r == [1, i + 1], f"floor append {i}: {r}")
            elapsed = (ns() - t0) / 1e9
            driver_cpu = time.process_time() - cpu0
        rows = reader.xrange(log, "-", "+")
        values = [orjson.loads(f[b"ops"])[0]["value"] for _, f in rows]
        check(sorted(values) == list(range(n)) and int(reader.hget(head, "version")) == n,
              f"floor {mode}: {len(values)} entries read back for {n} appends")
        out[mode] = {"n": n, "per_s": n / elapsed, "driver_cpu_us": driver_cpu / n * 1e6,
                     "p50_us": statistics.median(lat) if lat else None, "redis_cpu_us": stats.cpu / n * 1e6,
                     "commands_per_patch": {k: round(v / n, 2) for k, v in sorted(stats.commands.items())}}
        writer.close()
        reader.close()
    return out


async def floor_fanout(port: int, samples: int, warmup: int) -> dict[str, Any]:
    """Append on one connection; a second has the hint (pub/sub) and a third reads the entry
    (XRANGE from the version it has), as a host's listener does. Send to read, ack to read."""
    tag = f"{{floor-fan-{uuid.uuid4().hex[:6]}}}"
    head, log, channel = f"fl:{tag}:head", f"fl:{tag}:log", f"fl:fan:{tag}"
    writer, listener, reader = (aioredis.Redis(port=port) for _ in range(3))
    script = writer.register_script(FLOOR_APPEND)
    pubsub = listener.pubsub()
    await pubsub.subscribe(channel)
    seen: dict[int, asyncio.Future[int]] = {}
    loop = asyncio.get_running_loop()

    async def follow() -> None:
        have = 0
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
            if message is None:
                continue
            rows = await reader.xrange(log, min=f"1-{have + 1}", max="+")
            t = ns()
            for entry_id, _ in rows:
                have = int(entry_id.decode().split("-")[1])
                seen.setdefault(have, loop.create_future()).set_result(t)

    task = asyncio.create_task(follow())
    send_read, ack_read, rtt = [], [], []
    try:
        for i in range(warmup + samples):
            ops = orjson.dumps([{"op": "add", "path": f"/k{i % 100}", "value": i}])
            t0 = ns()
            r = await script(keys=[head, log], args=[i, ops, channel])
            t_ack = ns()
            check(r == [1, i + 1], f"floor fan-out append {i}: {r}")
            t_read = await asyncio.wait_for(seen.setdefault(i + 1, loop.create_future()), 5)
            if i >= warmup:
                send_read.append((t_read - t0) / 1e3)
                ack_read.append((t_read - t_ack) / 1e3)
                rtt.append((t_ack - t0) / 1e3)
    finally:
        task.cancel()
        await pubsub.aclose()
        for c in (writer, listener, reader):
            await c.aclose()
    return {"send_to_read": send_read, "ack_to_read": ack_read, "append_rtt": rtt}


# ---- hosts ---------------------------------------------------------------------------------

def child_env(extra: dict[str, str]) -> dict[str, str]:
    """As bench/env.mjs: an app spawning its sidecar sets neither of the dropped two."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}
    return {**env, "BRIDGE_LOG_LEVEL": "warning", **extra}


class Host:
    """One ``bridge serve --plugin state`` process over NDJSON pipes, read by a task of this loop;
    replies and ``state.changed`` are stamped with the time their line was read."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name, self.env, self.workdir = name, env, workdir
        self.ids = 0
        self.pending: dict[int, asyncio.Future[tuple[int, Any]]] = {}
        self.on_changed: Callable[[int, dict[str, Any]], None] | None = None
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Host:
        self.stderr = open(self.workdir / f"{self.name}.stderr", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge", "serve", "bridge.builtins.demo:app", "--plugin", "state",
            "--framing", "ndjson", "--no-audit", cwd=REPO, env=child_env(self.env),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=self.stderr, limit=1 << 28)
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)  # type: ignore[union-attr]
        check(b"$/ready" in line, f"{self.name}: no $/ready but {line[:200]!r}; see {self.stderr.name}")
        self.reader = asyncio.create_task(self._read())
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid  # type: ignore[union-attr]

    async def _read(self) -> None:
        stdout = self.proc.stdout  # type: ignore[union-attr]
        while line := await stdout.readline():
            t = ns()
            message = orjson.loads(line)
            if "method" not in message:
                fut = self.pending.pop(message.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result((t, message))
            elif message["method"] == "state.changed" and self.on_changed is not None:
                self.on_changed(t, message["params"])
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(Failure(f"{self.name} closed its output; see {self.stderr.name}"))

    async def call_at(self, method: str, params: dict[str, Any]) -> tuple[int, Any]:
        """(the time the reply was read, the reply)."""
        self.ids += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.ids] = fut
        self.proc.stdin.write(orjson.dumps({"jsonrpc": "2.0", "id": self.ids, "method": method,  # type: ignore
                                            "params": params}) + b"\n")
        return await fut

    async def ok(self, method: str, **params: Any) -> Any:
        _, reply = await self.call_at(method, params)
        check("result" in reply, f"{self.name} {method}: {reply}")
        return reply["result"]

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.stdin.close()  # type: ignore[union-attr]
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.stderr.close()
        if self.proc is not None and self.proc.returncode != 0:  # noted, as the other benches do
            tail = Path(self.stderr.name).read_bytes()[-2000:].decode(errors="replace")
            say(f"note: {self.name} exited with {self.proc.returncode}:\n{tail}")


async def start_hosts(names: list[str], env: dict[str, str], workdir: Path) -> list[Host]:
    """Started together; if one fails, the others are stopped before the error goes on."""
    hosts = [Host(n, env, workdir) for n in names]
    started = await asyncio.gather(*(h.start() for h in hosts), return_exceptions=True)
    failed = [r for r in started if isinstance(r, BaseException)]
    if failed:
        await asyncio.gather(*(h.stop() for h in hosts if h.proc is not None))
        raise failed[0]
    return hosts


def redis_env(url: str, prefix: str, **more: str) -> dict[str, str]:
    return {"BRIDGE_STATE_BACKEND": url, "BRIDGE_STATE_REDIS_PREFIX": prefix, **more}


class RedisStats:
    """Redis's CPU and commands over a phase (INFO cpu, INFO commandstats after CONFIG RESETSTAT)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def __enter__(self) -> RedisStats:
        self.client.config_resetstat()
        info = self.client.info("cpu")
        self.cpu0 = info["used_cpu_user"] + info["used_cpu_sys"]
        return self

    def __exit__(self, *exc: object) -> None:
        info = self.client.info("cpu")
        self.cpu = info["used_cpu_user"] + info["used_cpu_sys"] - self.cpu0
        stats = self.client.info("commandstats")
        self.commands = {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()
                         if k not in ("cmdstat_config", "cmdstat_info")}


def patch_for(h: int, j: int) -> tuple[str, list[dict[str, Any]]]:
    """The j-th patch of writer h: a key of its own in one of 100 buckets (so a patch copies two
    small objects, whatever the count, and its presence can be checked at the end)."""
    key = f"h{h}n{j}"
    return key, [{"op": "add", "path": f"/b{j % BUCKETS}/{key}", "value": j}]


async def drive(hosts: list[Host], docs: list[Any], n: int, window: int, stats: RedisStats | None
                ) -> dict[str, Any]:
    """``n`` patches spread over ``hosts`` (each its share, ``window`` outstanding per host, one
    client per host), host h writing ``docs[h]`` (a name, or a list of names it takes in turn).
    Every reply checked; the acknowledged keys per document returned with the figures."""
    per_host = n // len(hosts)
    acked: dict[str, list[str]] = {}
    errors: dict[int, int] = {}
    lat: list[float] = []
    cpu0 = [cpu_s(h.pid) for h in hosts]
    driver0 = time.process_time()

    async def lane(h: int, host: Host, mine: list[str], counter: list[int]) -> None:
        while counter[0] < per_host:
            j = counter[0]
            counter[0] += 1
            doc = mine[j % len(mine)]
            key, ops = patch_for(h, j)
            s = ns()
            t, reply = await host.call_at("state.patch", {"doc": doc, "ops": ops})
            lat.append((t - s) / 1e3)
            if "result" in reply:
                check(reply["result"]["doc"] == doc and reply["result"]["version"] > 1, f"reply {reply}")
                acked.setdefault(doc, []).append(key)
            else:
                errors[reply["error"]["code"]] = errors.get(reply["error"]["code"], 0) + 1

    counters = [[0] for _ in hosts]  # the next patch of each host, shared by its lanes
    t0 = ns()
    with stats if stats is not None else contextlib.nullcontext():
        await asyncio.gather(*(lane(h, host, docs[h] if isinstance(docs[h], list) else [docs[h]], counters[h])
                               for h, host in enumerate(hosts) for _ in range(window)))
    elapsed = (ns() - t0) / 1e9
    total = sum(len(v) for v in acked.values())
    host_cpu = sum(cpu_s(h.pid) - c for h, c in zip(hosts, cpu0))
    out = {"n": n, "acked": total, "errors": errors, "per_s": total / elapsed, "elapsed_s": elapsed,
           "host_cpu_us": host_cpu / max(1, total) * 1e6,
           "driver_cpu_us": (time.process_time() - driver0) / max(1, total) * 1e6,
           "p50_us": statistics.median(lat), "p99_us": pct(lat, 0.99), "acked_keys": acked}
    if stats is not None:
        out["redis_cpu_us"] = stats.cpu / max(1, total) * 1e6
        out["commands_per_patch"] = {k: round(v / max(1, total), 2) for k, v in sorted(stats.commands.items())}
    return out


async def verify(reader: Host, acked: dict[str, list[str]], base: int = 1) -> None:
    """Every acknowledged patch present exactly once: each key at its bucket, no other key, and
    one version per acknowledged patch, read on a host that did not write them."""
    for doc, keys in acked.items():
        got = await reader.ok("state.get", doc=doc)
        found = {k: v for bucket in got["value"].values() for k, v in bucket.items()}
        check(got["version"] == base + len(keys), f"{doc}: version {got['version']} for {len(keys)} acknowledged "
              f"patches (a patch applied twice, or one not acknowledged applied)")
        check(len(set(keys)) == len(keys) and set(found) == set(keys),
              f"{doc}: {len(set(keys) - set(found))} acknowledged patches missing, "
              f"{len(set(found) - set(keys))} unacknowledged present")
        for key in keys:
            h, j = key[1:].split("n")
            check(got["value"][f"b{int(j) % BUCKETS}"].get(key) == int(j), f"{doc}: {key} misplaced")


async def throughput(hosts: list[Host], reader: Host, k: int, mode: str, n: int, window: int, spread: int,
                     stats: RedisStats | None, label: str) -> dict[str, Any]:
    """k writers: one shared document (``spread`` 0) or ``spread`` documents of each writer's own."""
    writers = hosts[:k]
    run = uuid.uuid4().hex[:6]
    if spread:
        docs: list[Any] = [[f"{label}-{run}-h{h}-d{d}" for d in range(spread)] for h in range(k)]
    else:
        docs = [f"{label}-{run}"] * k
    for name in sorted({d for ds in docs for d in (ds if isinstance(ds, list) else [ds])}):
        await writers[0].ok("state.set", doc=name, value={f"b{b}": {} for b in range(BUCKETS)})
    out = await drive(writers, docs, n, window, stats)
    await verify(reader, out.pop("acked_keys"))
    out.update(hosts=k, mode=mode, spread=spread)
    return out


async def fanout(a: Host, b: Host, samples: int, warmup: int, doc: str) -> dict[str, Any]:
    """A patch sent by a client of ``a``, acknowledged, and ``state.changed`` at a client of ``b``
    (``a is b``: another client of the same host)."""
    await a.ok("state.set", doc=doc, value={})
    base = (await b.ok("state.subscribe", doc=doc, since_version=1))["to"]
    check(base == 1, f"fan-out: subscribed at {base}")
    loop = asyncio.get_running_loop()
    seen: dict[int, asyncio.Future[int]] = {}

    def changed(t: int, params: dict[str, Any]) -> None:
        if params["doc"] == doc:
            check(params["from"] == params["to"] - 1, f"fan-out: {params}")
            seen.setdefault(params["to"], loop.create_future()).set_result(t)

    b.on_changed = changed
    send_changed, ack_changed, rtt = [], [], []
    try:
        for i in range(warmup + samples):
            t0 = ns()
            t_ack, reply = await a.call_at("state.patch", {"doc": doc, "ops": [{"op": "add", "path": f"/k{i % 100}",
                                                                                "value": i}]})
            check(reply.get("result", {}).get("version") == i + 2, f"fan-out patch {i}: {reply}")
            t_changed = await asyncio.wait_for(seen.setdefault(i + 2, loop.create_future()), 5)
            if i >= warmup:
                send_changed.append((t_changed - t0) / 1e3)
                ack_changed.append((t_changed - t_ack) / 1e3)
                rtt.append((t_ack - t0) / 1e3)
    finally:
        b.on_changed = None
    return {"send_to_read": send_changed, "ack_to_read": ack_changed, "append_rtt": rtt}


async def fill(host: Host, doc: str, n: int, window: int, patch: Callable[[int], list[dict[str, Any]]]) -> None:
    counter = [0]

    async def lane() -> None:
        while counter[0] < n:
            i = counter[0]
            counter[0] += 1
            await host.ok("state.patch", doc=doc, ops=patch(i))

    await asyncio.gather(*(lane() for _ in range(window)))


def catchup_patch(i: int) -> list[dict[str, Any]]:
    return [{"op": "add", "path": f"/k{i % 1000}", "value": {"n": i, "text": "x" * 20}}]


async def catch_up(writer: Host, readers: list[Host], n: int, window: int, warm: int) -> dict[str, Any]:
    """``n`` versions written on ``writer``; each reader (a host that never read the document)
    subscribes from version 0 as ops; then ``warm`` more on the first reader (mirror loaded)."""
    doc = f"catchup-{uuid.uuid4().hex[:6]}"
    await fill(writer, doc, n, window, catchup_patch)
    now = await writer.ok("state.get", doc=doc)
    check(now["version"] == n, f"catch-up: version {now['version']}")
    cold, warm_ms, stalls = [], [], []
    for i, reader in enumerate(readers + [readers[0]] * warm):
        done = asyncio.Event()
        pings = asyncio.create_task(pinger(reader, done))
        t0 = ns()
        got = await reader.ok("state.subscribe", doc=doc, since_version=0, compact=False)
        (cold if i < len(readers) else warm_ms).append((ns() - t0) / 1e6)
        done.set()
        stalls.append(max(await pings))
        check(got["full"] is False and got["from"] == 0 and got["to"] == n and len(got["ops"]) == n,
              f"catch-up: full={got['full']} from={got.get('from')} to={got['to']} ops={len(got.get('ops', []))}")
        if i == 0:
            value: Any = {}
            for op in got["ops"]:
                value = apply(value, [op])[0]
            check(value == now["value"], "catch-up: the ops replayed do not give the value")
        await reader.ok("state.unsubscribe", subscription=got["subscription"])
    return {"versions": n, "cold_ms": cold, "warm_ms": warm_ms, "cold_stall_ms": stalls[:len(readers)],
            "warm_stall_ms": stalls[len(readers):], "doc": doc}


async def pinger(host: Host, done: asyncio.Event) -> list[float]:
    """``rpc.ping`` round trips (ms) on ``host``, one after another, until ``done``: the longest is
    how long the host answered nothing else (its event loop busy)."""
    lat = [0.0]
    while not done.is_set():
        s = ns()
        await host.ok("rpc.ping")
        lat.append((ns() - s) / 1e6)
    return lat


async def read_log(port: int, key: str, n: int, rounds: int = 3) -> list[float]:
    """The catch-up floor: XRANGE of the whole log from another connection (redis-py asyncio, as
    the hosts), each entry's ops decoded; ms."""
    client = aioredis.Redis(port=port)
    times = []
    for _ in range(rounds):
        t0 = ns()
        rows = await client.xrange(key, "-", "+")
        ops = [orjson.loads(f[b"ops"]) for _, f in rows]
        times.append((ns() - t0) / 1e6)
        check(len(ops) == n, f"read back {len(ops)} log entries of {n}")
    await client.aclose()
    return times


async def catch_up_full(writer: Host, reader: Host, doc: str, version: int) -> dict[str, Any]:
    """Default history: since_version 0 is older than the kept history, so the reply is the value."""
    t0 = ns()
    got = await reader.ok("state.subscribe", doc=doc, since_version=0)
    ms = (ns() - t0) / 1e6
    check(got["full"] is True and got["to"] == version, f"full catch-up: {got.get('reason')} to={got['to']}")
    check(got["value"] == (await writer.ok("state.get", doc=doc))["value"], "full catch-up: another value")
    return {"versions": version, "ms": ms, "reason": got["reason"]}


def redis_memory(client: redis.Redis, prefix: str, doc: str) -> dict[str, Any]:
    """MEMORY USAGE (every element counted: SAMPLES 0) of one document's keys, and of the
    idempotency keys its patches left (each lives 10 s without an idempotency_key)."""
    keys = Keys.of(prefix, doc)
    parts = {name: client.memory_usage(key, samples=0) or 0 for name, key in
             (("head", keys.head), ("log", keys.log), ("snapshot", keys.snap))}
    idem = list(client.scan_iter(match=keys.idem_prefix + "*", count=1000))
    idem_bytes = sum(client.memory_usage(k, samples=0) or 0 for k in idem)
    return {**parts, "log_entries": client.xlen(keys.log),
            "snapshot_version": int(client.hget(keys.snap, "version") or 0),
            "document": sum(parts.values()), "idem_keys": len(idem), "idem_bytes": idem_bytes,
            "idem_ttl_ms": client.pttl(idem[0]) if idem else None}


def sqlite_bytes(path: Path) -> dict[str, int]:
    """Pages in use (not free) of an embedded store, read-only, and its files' sizes."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        page = db.execute("PRAGMA page_size").fetchone()[0]
        used = db.execute("PRAGMA page_count").fetchone()[0] - db.execute("PRAGMA freelist_count").fetchone()[0]
    finally:
        db.close()
    files = sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())
    return {"in_use": used * page, "files": files}


def mem_patch(i: int) -> list[dict[str, Any]]:
    return [{"op": "add", "path": f"/k{i % 100}", "value": i}]


# ---- the run --------------------------------------------------------------------------------

def say(what: str) -> None:
    """Progress, on stderr (the report goes to stdout)."""
    print(what, file=sys.stderr, flush=True)


async def bench(args: argparse.Namespace, server: RedisServer, workdir: Path) -> dict[str, Any]:
    R: dict[str, Any] = {"args": vars(args)}
    direct = redis.Redis(port=server.port)
    say("floor: compare-and-append with redis-py")
    R["floor"] = floor_throughput(server.port, args.seq, args.patches, args.window)
    R["floor_fanout"] = await floor_fanout(server.port, args.samples, args.warmup)

    prefix = f"b{uuid.uuid4().hex[:8]}"
    say("hosts on Redis: throughput")
    hosts = await start_hosts([f"redis{i}" for i in range(5)], redis_env(server.url, prefix), workdir)
    reader = hosts[4]
    try:
        R["redis"], R["floor_rounds"] = [], [R["floor"]["pipe"]["per_s"]]
        for k in (1, 2, 4):
            for mode, n, window, spread in (("seq", args.seq, 1, 0), ("pipe", args.patches, args.window, 0),
                                            ("pipe", args.patches, args.window, args.spread)):
                R["floor_rounds"].append(floor_throughput(server.port, 0, args.patches, args.window, ("pipe",))
                                         ["pipe"]["per_s"])  # interleaved: a burst of load lands on both
                stats = RedisStats(direct)
                row = await throughput(hosts, reader, k, mode, n, window, spread, stats, f"tp{k}{mode}{spread}")
                R["redis"].append(row)
                say(f"  {k} host(s) {mode}{' spread' if spread else ''}: {row['per_s']:,.0f}/s")
        say("hosts on Redis: fan-out")
        R["fanout"] = await fanout(hosts[0], hosts[1], args.samples, args.warmup, f"fan-{prefix}")
        say("hosts on Redis: memory")
        mem_doc = f"mem-{prefix}"
        await fill(hosts[2], mem_doc, args.mem_patches, args.window, mem_patch)
        R["memory"] = redis_memory(direct, prefix, mem_doc)
        R["memory"]["patches"] = args.mem_patches
        R["catch_up_default"] = await catch_up_full(hosts[2], hosts[3], mem_doc, args.mem_patches)
    finally:
        await asyncio.gather(*(h.stop() for h in hosts))

    say(f"hosts on Redis: catch-up of {args.catchup} versions (history = {args.catchup})")
    hosts = await start_hosts([f"catchup{i}" for i in range(1 + args.cold)],
                              redis_env(server.url, f"c{prefix}", BRIDGE_STATE_HISTORY=str(args.catchup)), workdir)
    try:
        R["catch_up"] = await catch_up(hosts[0], hosts[1:], args.catchup, args.window, args.warm)
        R["catch_up"]["floor_ms"] = await read_log(server.port, Keys.of(f"c{prefix}", R["catch_up"]["doc"]).log,
                                                   args.catchup)
    finally:
        await asyncio.gather(*(h.stop() for h in hosts))

    R["sqlite"] = {}
    for sync in ("full", "normal"):
        say(f"embedded SQLite, synchronous={sync}")
        path = workdir / f"sqlite-{sync}" / "state.sqlite3"
        path.parent.mkdir()
        [h] = await start_hosts([f"sqlite-{sync}"], {"BRIDGE_STATE_PATH": str(path),
                                                     "BRIDGE_STATE_SYNCHRONOUS": sync}, workdir)
        try:
            row: dict[str, Any] = {}
            await fill(h, "mem", args.mem_patches, args.window, mem_patch)  # first, in a fresh database
            await h.ok("state.checkpoint")
            row["memory"] = sqlite_bytes(path)
            for mode, n, window, spread in (("seq", args.seq, 1, 0), ("pipe", args.patches, args.window, 0),
                                            ("pipe", args.patches, args.window, args.spread)):
                row[f"{mode}{spread or ''}"] = await throughput([h], h, 1, mode, n, window, spread, None,
                                                                f"tp-sqlite{mode}{spread}")
            row["fanout"] = await fanout(h, h, args.samples, args.warmup, "fan")
            R["sqlite"][sync] = row
        finally:
            await h.stop()
    path = workdir / "sqlite-catchup" / "state.sqlite3"
    path.parent.mkdir()
    [h] = await start_hosts(["sqlite-catchup"], {"BRIDGE_STATE_PATH": str(path), "BRIDGE_STATE_SYNCHRONOUS": "normal",
                                                 "BRIDGE_STATE_HISTORY": str(args.catchup)}, workdir)
    try:
        R["sqlite_catch_up"] = await catch_up(h, [h], args.catchup, args.window, args.warm)
    finally:
        await h.stop()
    direct.close()
    return R


# ---- the report -----------------------------------------------------------------------------

def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(R: dict[str, Any]) -> str:
    fl, lines = R["floor"], []
    floor_pipe = statistics.median(R["floor_rounds"])
    lines.append(f"Floor pipelined: {fmt(floor_pipe)} appends/s, the median of {len(R['floor_rounds'])} measurements "
                 f"interleaved with the phases ({fmt(min(R['floor_rounds']))}-{fmt(max(R['floor_rounds']))}); "
                 f"ratios are to it.\n")
    lines.append("Patches/s (every reply checked; every acknowledged patch found once at the end, on a host that "
                 "did not write it):\n")
    lines.append("| writer | mode | patches/s | vs floor pipelined | vs floor same mode | p50 us | p99 us | "
                 "host cpu us/patch | redis cpu us/patch | EVALSHA/patch | catch-ups/patch | driver cpu us/patch |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")

    def mode_name(r: dict[str, Any]) -> str:
        if r["mode"] == "seq":
            return "one at a time"
        return f"pipelined, window {R['args']['window']}" + (f", {r['spread']} docs per host" if r["spread"] else
                                                             ", one shared doc")

    for mode in ("seq", "pipe"):
        f = fl[mode]
        same = f["per_s"] if mode == "seq" else floor_pipe
        lines.append(f"| floor (redis-py, 1 connection) | {'one at a time' if mode == 'seq' else 'pipelined'} | "
                     f"{fmt(f['per_s'])} | {f['per_s'] / floor_pipe:.2f}x | {f['per_s'] / same:.2f}x | "
                     f"{fmt(f['p50_us'])} | - | - | "
                     f"{f['redis_cpu_us']:.1f} | {f['commands_per_patch'].get('evalsha', 0):.2f} | 0 | "
                     f"{f['driver_cpu_us']:.1f} (redis-py) |")
    rows = [(f"{r['hosts']} host{'s' if r['hosts'] > 1 else ''} on Redis", r) for r in R["redis"]]
    rows += [(f"1 host, SQLite synchronous={sync}", row[key]) for sync, row in R["sqlite"].items()
             for key in ("seq", "pipe", f"pipe{R['args']['spread']}")]
    for name, r in rows:
        c = r.get("commands_per_patch")
        same = fl["seq"]["per_s"] if r["mode"] == "seq" else floor_pipe
        lines.append(f"| {name} | {mode_name(r)} | {fmt(r['per_s'])} | {r['per_s'] / floor_pipe:.2f}x | "
                     f"{r['per_s'] / same:.2f}x | {fmt(r['p50_us'])} | {fmt(r['p99_us'])} | {r['host_cpu_us']:.0f} | "
                     + (f"{r['redis_cpu_us']:.0f} | {c.get('evalsha', 0):.2f} | {c.get('multi', 0):.2f} | " if c else
                        "- | - | - | ")
                     + f"{r['driver_cpu_us']:.0f} |")
    errors = [(name, r["errors"]) for name, r in rows if r["errors"]]
    if errors:
        lines.append("\nRefused patches: " + "; ".join(f"{n} {e}" for n, e in errors))
    lines.append("\nRedis commands per patch (INFO commandstats; the scripts' own commands included):")
    for name, r in [("floor, pipelined", fl["pipe"])] + [(f"{n}, {mode_name(r)}", r) for n, r in rows
                                                          if r.get("commands_per_patch") and r["mode"] == "pipe"]:
        lines.append(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in r["commands_per_patch"].items()
                                               if k != "config|resetstat"))

    lines.append("\nFan-out, one patch at a time (us):\n")
    lines.append("| path | samples | send->seen p50 | p99 | ack->seen p50 | p99 | append round trip p50 |")
    lines.append("|---|---|---|---|---|---|---|")
    fans = [("floor: EVALSHA on conn 1 -> hint on conn 2 -> XRANGE on conn 3", R["floor_fanout"]),
            ("Redis: state.patch on host A -> state.changed at a client of host B", R["fanout"])]
    fans += [(f"SQLite {s}: state.patch -> state.changed, another client of the same host", row["fanout"])
             for s, row in R["sqlite"].items()]
    for name, f in fans:
        lines.append(f"| {name} | {len(f['send_to_read'])} | {fmt(statistics.median(f['send_to_read']))} | "
                     f"{fmt(pct(f['send_to_read'], 0.99))} | {fmt(statistics.median(f['ack_to_read']))} | "
                     f"{fmt(pct(f['ack_to_read'], 0.99))} | {fmt(statistics.median(f['append_rtt']))} |")

    c, s = R["catch_up"], R["sqlite_catch_up"]
    lines.append(f"\nCatch-up: state.subscribe since_version 0, compact false, {c['versions']:,} versions as ops "
                 f"(ms; every reply's ops replayed once and compared):\n")
    lines.append("| where | ms | longest rpc.ping meanwhile, ms |")
    lines.append("|---|---|---|")
    lines.append(f"| floor: XRANGE of the whole log ({c['versions']:,} entries) on another connection, ops decoded | "
                 f"{statistics.median(c['floor_ms']):.1f} | - |")
    lines.append(f"| Redis, a host that never read the document (loads it from Redis), history {c['versions']} | "
                 + ", ".join(f"{x:.0f}" for x in c["cold_ms"]) + " | "
                 + ", ".join(f"{x:.0f}" for x in c["cold_stall_ms"]) + " |")
    lines.append(f"| Redis, the same host again (mirror loaded: one round trip, then the ops) | "
                 f"{statistics.median(c['warm_ms']):.1f} (median of {len(c['warm_ms'])}) | "
                 f"{max(c['warm_stall_ms']):.1f} |")
    lines.append(f"| SQLite normal, the writing host (in memory) | "
                 f"{statistics.median(s['warm_ms'] + s['cold_ms']):.1f} | "
                 f"{max(s['warm_stall_ms'] + s['cold_stall_ms']):.1f} |")
    d = R["catch_up_default"]
    lines.append(f"| Redis, default history, {d['versions']:,} versions: the value instead (full) | "
                 f"{d['ms']:.1f} | - |")
    cold = statistics.median(c["cold_ms"]) / statistics.median(c["floor_ms"])
    lines.append(f"\nCold catch-up against the floor: {cold:.1f}x (no target).")

    m = R["memory"]
    sq = R["sqlite"]["full"]["memory"]
    lines.append(f"\nMemory per document after {m['patches']:,} patches (add /k<i % 100>), history and "
                 f"snapshot_every at their defaults (1000):\n")
    lines.append("| what | bytes |")
    lines.append("|---|---|")
    lines.append(f"| Redis: the document's keys (MEMORY USAGE, SAMPLES 0) | {m['document']:,} "
                 f"(log {m['log']:,} in {m['log_entries']} entries, snapshot {m['snapshot']:,} at v"
                 f"{m['snapshot_version']}, head {m['head']:,}) |")
    lines.append(f"| Redis: its patches' idempotency keys, alive {m['idem_ttl_ms'] or 0:,} ms more | "
                 f"{m['idem_bytes']:,} ({m['idem_keys']:,} keys) |")
    lines.append(f"| SQLite (full), after state.checkpoint: pages in use / files | {sq['in_use']:,} / "
                 f"{sq['files']:,} |")

    ff, bf = R["floor_fanout"], R["fanout"]
    p50, fp50 = statistics.median(bf["send_to_read"]), statistics.median(ff["send_to_read"])
    lines.append("\n| target | measured | verdict |")
    lines.append("|---|---|---|")
    for r in R["redis"]:
        if r["mode"] == "pipe":
            ratio = r["per_s"] / floor_pipe
            lines.append(f"| {r['hosts']} host(s), {mode_name(r)}: >= 0.5x floor pipelined ({fmt(floor_pipe)}/s) | "
                         f"{ratio:.2f}x | {verdict(ratio >= 0.5)} |")
    lines.append(f"| fan-out p50 <= 2x the floor's (send -> seen on the other side) | {p50:.0f} us / {fp50:.0f} us = "
                 f"{p50 / fp50:.2f}x | {verdict(p50 <= 2 * fp50)} |")
    lines.append(f"| (the same from the acknowledgement) | {statistics.median(bf['ack_to_read']):.0f} us / "
                 f"{statistics.median(ff['ack_to_read']):.0f} us | - |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds, noisy")
    parser.add_argument("--patches", type=int, default=4000, help="patches per pipelined phase (all hosts)")
    parser.add_argument("--seq", type=int, default=1200, help="patches per one-at-a-time phase (all hosts)")
    parser.add_argument("--window", type=int, default=64, help="calls outstanding per host when pipelined")
    parser.add_argument("--spread", type=int, default=8, help="documents per host in the spread phase")
    parser.add_argument("--samples", type=int, default=1000, help="fan-out samples (after --warmup)")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--catchup", type=int, default=10000, help="versions to catch up")
    parser.add_argument("--cold", type=int, default=2, help="hosts that catch up cold (never read the document)")
    parser.add_argument("--warm", type=int, default=5, help="catch-ups again on a host that has the document")
    parser.add_argument("--mem-patches", type=int, default=5000, help="patches before measuring memory")
    parser.add_argument("--json", help="write every figure to this file")
    args = parser.parse_args()
    if args.quick:
        args.patches, args.seq, args.samples, args.warmup = 800, 300, 200, 20
        args.catchup, args.cold, args.warm, args.mem_patches = 2000, 1, 2, 2500
    try:
        import uvloop

        uvloop.install()  # as the hosts: the driver's own cost per message stays small
    except ImportError:
        pass
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bridge-state-redis-bench-") as tmp:
        workdir = Path(tmp)
        try:
            server = RedisServer(workdir / "redis").start()
        except BaseException as exc:  # tests/parts.py's require() skips (a pytest outcome) when it is missing
            print(f"cannot start redis-server: {exc}", file=sys.stderr)
            return 1
        try:
            version = redis.Redis(port=server.port).info("server")["redis_version"]
            R = asyncio.run(bench(args, server, workdir))
        except Failure as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
        finally:
            server.stop()
    R["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "redis": version,
                    "redis_py": redis.__version__, "seconds": round(time.perf_counter() - started, 1)}
    print(f"state on Redis: redis-server {version} (no persistence), redis-py {redis.__version__}, "
          f"Python {R['machine']['python']}, {R['machine']['cpus']} cpus\n")
    print(report(R))
    print(f"\n({R['machine']['seconds']} s)")
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(R, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
