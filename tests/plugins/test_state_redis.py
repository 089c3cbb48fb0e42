"""handlers/state/redis_backend.py against a real redis-server: several hosts on one Redis have
the semantics of one (global versions, the same rebase-or-conflict rule decided atomically,
gap-free ``state.changed`` on every host, catch-up on any host, idempotent retries), memory
bounded by snapshots and trimming, and Redis lost mid-session: clear errors, then reconnection
and exactly the versions missed. Hosts are real processes where the behaviour is end to end;
the property test runs two engines in one process (each with its own connections)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from anyio.abc import TaskGroup
from hypothesis import given, settings
from hypothesis import strategies as st
from redis import Redis

from bridge import BridgeError
from bridge.builtins.state.engine import CONFLICT, HISTORY_GONE, UNAVAILABLE, Documents, Limits
from bridge.builtins.state.patches import apply
from bridge.builtins.state.redis_backend import Keys, RedisDocuments
from bridge.redis_url import RedisOptions, redact
from bridge.builtins.state.store import StoreError

from harness import Host, Notifications
from redis_server import RedisServer, free_port, make_certs, redis_cluster, redis_server, replicated


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


def prefix() -> str:
    """A key prefix of the test's own, so tests sharing the module's Redis never see each other."""
    return f"t{uuid.uuid4().hex[:10]}"


# ---- two engines in one process ---------------------------------------------------------------

async def engines(tasks: TaskGroup, url: str, pre: str, n: int = 2, log_kept: int = 1000,
                  **limits: Any) -> list[RedisDocuments]:
    """``n`` engines on one Redis, each with its own connections, as ``n`` hosts would have."""
    return [await RedisDocuments.open_redis(RedisOptions(url, pre, log_kept=log_kept), tasks.start_soon,
                                            Limits(**limits)) for _ in range(n)]


async def conflict_data(docs: Documents, other: Documents) -> dict[str, Any]:
    """The 4501 ``data`` when ``other`` changed /title after version 1 and ``docs`` patches it from 1."""
    await docs.patch("d", [{"op": "add", "path": "", "value": {"title": "t", "body": "b"}}], None, "setup")
    await other.patch("d", [{"op": "replace", "path": "/title", "value": "alice"}], 1, "alice")
    with pytest.raises(BridgeError) as refused:
        await docs.patch("d", [{"op": "replace", "path": "/title", "value": "bob"}], 1, "bob")
    assert refused.value.code == CONFLICT
    # a disjoint path from the same old base is rebased on top
    assert await docs.patch("d", [{"op": "replace", "path": "/body", "value": "bob"}], 1, "bob") == 3
    return refused.value.data


@pytest.mark.anyio
async def test_conflicts_across_two_engines_carry_the_data_of_one_host(redis: RedisServer, tasks: TaskGroup) -> None:
    embedded = await Documents.open(None, tasks.start_soon)
    one_host = await conflict_data(embedded, embedded)
    a, b = await engines(tasks, redis.url, prefix())
    across = await conflict_data(a, b)
    assert across == one_host == {"doc": "d", "base_version": 1, "current_version": 2, "paths": ["/title"],
                                  "authors": ["alice"]}
    await b.refresh("d")
    assert a.docs["d"].value == b.docs["d"].value == {"title": "alice", "body": "bob"}
    for docs in (embedded, a, b):
        await docs.close()


@pytest.mark.anyio
async def test_a_patch_decided_on_a_mirror_that_is_behind_is_decided_again_on_redis(redis: RedisServer,
                                                                                  tasks: TaskGroup) -> None:
    """A host tries a patch on its mirror as it is; when another host got further (its hint not
    yet here: this host's listener is kept from starting), the append is refused and the patch is
    decided again on Redis's top: ops that only apply there, or a base the mirror has not seen."""
    a, b = await engines(tasks, redis.url, prefix())
    a._listening = True  # a's listener never starts (as if every hint were late): its mirror
    a._tried.set()  # moves only with its own patches
    assert await a.patch("d", [{"op": "add", "path": "", "value": {"x": 1}}], None, "p") == 1
    assert await b.patch("d", [{"op": "add", "path": "/y", "value": 2}], None, "q") == 2
    assert a.docs["d"].version == 1  # behind
    assert await a.patch("d", [{"op": "replace", "path": "/y", "value": 3}], None, "p") == 3  # /y: only on top
    assert await b.patch("d", [{"op": "add", "path": "/z", "value": 4}], None, "q") == 4
    assert await a.patch("d", [{"op": "add", "path": "/w", "value": 5}], 4, "p") == 5  # base 4: unseen by a
    with pytest.raises(BridgeError) as refused:  # a real conflict is still one, with Redis's version
        await a.patch("d", [{"op": "replace", "path": "/z", "value": 0}], 3, "p")
    assert refused.value.code == CONFLICT and refused.value.data["current_version"] == 5
    await b.refresh("d")
    assert a.docs["d"].value == b.docs["d"].value == {"x": 1, "y": 3, "z": 4, "w": 5}
    for docs in (a, b):
        await docs.close()


def interleaving() -> st.SearchStrategy[list[tuple[int, str, bool]]]:
    """Patches as (host, key they set, with a base_version from the host's last read)."""
    return st.lists(st.tuples(st.integers(0, 1), st.sampled_from(["a", "b", "c"]), st.booleans()),
                    min_size=1, max_size=12)


@settings(max_examples=25, deadline=None)
@given(steps=interleaving(), groups=st.integers(1, 4))
def test_any_interleaving_from_two_hosts_gives_one_history(redis: RedisServer, steps: list[tuple[int, str, bool]],
                                                           groups: int) -> None:
    """Patches from two hosts, sent in ``groups`` concurrent waves: the acknowledged versions are
    1..n, each once; both hosts' subscribers see the same n changes in order; the final value is
    the same on both and is the acknowledged log replayed."""

    async def run(tasks: TaskGroup) -> None:
        hosts = await engines(tasks, redis.url, prefix())
        watchers = [Notifications(), Notifications()]
        for host, watcher in zip(hosts, watchers):
            await host.refresh("d")
            host.subscribe("d", 0, "w", watcher)  # type: ignore[arg-type]
        acked: list[int] = []
        for wave in range(groups):
            bases = [h.docs["d"].version for h in hosts]

            async def one(i: int, h: int, key: str, based: bool) -> None:
                ops = [{"op": "add", "path": f"/{key}", "value": i}]
                try:
                    acked.append(await hosts[h].patch("d", ops, bases[h] if based else None, f"p{h}"))
                except BridgeError as exc:
                    assert exc.code == CONFLICT and exc.data["paths"] == [f"/{key}"], exc

            await asyncio.gather(*(one(i, *step) for i, step in enumerate(steps) if i % groups == wave))
        n = len(acked)
        assert sorted(acked) == list(range(1, n + 1))
        for host in hosts:
            await host.refresh("d")
        changes = [[(c["from"], c["to"], orjson.dumps(c["ops"])) for c in w.events("state.changed")] for w in watchers]
        assert [(f, t) for f, t, _ in changes[0]] == [(v - 1, v) for v in range(1, n + 1)]
        assert changes[0] == changes[1]
        replayed: Any = {}
        for _, _, ops in changes[0]:
            replayed = apply(replayed, orjson.loads(ops))[0]
        assert hosts[0].docs["d"].value == hosts[1].docs["d"].value == replayed
        assert (hosts[0].docs["d"].version, hosts[1].docs["d"].version) == (n, n)
        for host in hosts:
            await host.close()

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            await run(tasks)
            tasks.cancel_scope.cancel()

    asyncio.run(main())


@pytest.mark.anyio
async def test_snapshots_and_trimming_bound_redis_and_a_new_host_still_reads_it_exactly(
        redis: RedisServer, tasks: TaskGroup) -> None:
    pre = prefix()
    [a] = await engines(tasks, redis.url, pre, 1, history=5, snapshot_every=10, log_kept=0)
    for i in range(95):
        await a.patch("d", [{"op": "add", "path": f"/k{i % 7}", "value": i}], None, "p")
    keys, direct = Keys.of(pre, "d"), Redis.from_url(redis.url)
    assert direct.xlen(keys.log) <= 5 + 10  # the history, and what followed the newest snapshot
    assert int(direct.hget(keys.snap, "version")) == 90
    [b] = await engines(tasks, redis.url, pre, 1, history=5, snapshot_every=10, log_kept=0)
    await b.refresh("d")
    assert (b.docs["d"].version, b.docs["d"].value) == (95, a.docs["d"].value)
    assert [e.version for e in b.docs["d"].history] == [91, 92, 93, 94, 95]
    with pytest.raises(BridgeError) as gone:  # older than the kept history, as with one host
        await b.patch("d", [{"op": "add", "path": "/z", "value": 1}], 89, "p")
    assert gone.value.code == HISTORY_GONE
    caught = b.subscribe("d", 91, "p", Notifications(), compact=False)  # type: ignore[arg-type]
    assert caught["full"] is False and len(caught["ops"]) == 4
    assert await a.checkpoint() == {"d": 95}
    assert int(direct.hget(keys.snap, "version")) == 95 and direct.xlen(keys.log) == 5
    direct.close()
    for docs in (a, b):
        await docs.close()


@pytest.mark.anyio
async def test_a_delete_on_one_host_resets_the_other_and_the_name_starts_again(
        redis: RedisServer, tasks: TaskGroup) -> None:
    a, b = await engines(tasks, redis.url, prefix())
    for i in range(3):
        await a.patch("d", [{"op": "add", "path": f"/k{i}", "value": i}], None, "p")
    watcher = Notifications()
    await b.refresh("d")
    b.subscribe("d", 3, "w", watcher)  # type: ignore[arg-type]
    assert await a.listing() == [{"doc": "d", "version": 3}]
    assert await a.delete("d", "p") is True
    await b.refresh("d")
    assert watcher.events("state.reset") == [{"doc": "d", "version": 0, "value": {}, "deleted": True,
                                              "$meta": {"to": ["w"]}}]
    assert await b.listing() == [] and await a.delete("d", "p") is False
    assert await b.patch("d", [{"op": "add", "path": "/new", "value": 1}], None, "p") == 1
    await a.refresh("d")
    assert (a.docs["d"].version, a.docs["d"].value) == (1, {"new": 1})
    assert [c["to"] for c in watcher.events("state.changed")] == [1]
    for docs in (a, b):
        await docs.close()


@pytest.mark.anyio
async def test_redis_down_at_start_is_a_clear_error_without_the_password(tmp_path: Path, tasks: TaskGroup) -> None:
    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    with pytest.raises(StoreError) as refused:
        await RedisDocuments.open_redis(RedisOptions(url, timeout=1), tasks.start_soon)
    assert "cannot reach the state Redis at redis://user:***@127.0.0.1" in str(refused.value)
    assert "s3cret" not in str(refused.value) and redact(url) != url


# ---- real hosts --------------------------------------------------------------------------------

def host(url: str, pre: str, **env: str) -> Host:
    return Host("--plugin", "state", "--no-ready",
                env={"BRIDGE_STATE_BACKEND": url, "BRIDGE_STATE_REDIS_PREFIX": pre, **env})


ids = itertools.count(1)


def request(method: str, who: str, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": next(ids), "method": method,
            "params": {**params, "$meta": {"caller": {"participant": who}}}}


class Client:
    """One participant on one host; notifications seen while waiting are kept in ``events``,
    shared by the host's clients (the host writes them all to one pipe)."""

    def __init__(self, h: Host, who: str) -> None:
        self.h, self.who = h, who
        self.events: list[Any] = h.__dict__.setdefault("events", [])

    def send(self, method: str, **params: Any) -> int:
        message = request(method, self.who, **params)
        self.h.send(message)
        return message["id"]

    def reply(self, id: int, timeout: float = 10.0) -> Any:
        reply, seen = self.h.recv_until(lambda m: m.get("id") == id and "method" not in m, timeout)
        self.events.extend(seen)
        return reply

    def __call__(self, method: str, **params: Any) -> Any:
        return self.reply(self.send(method, **params))

    def ok(self, method: str, **params: Any) -> Any:
        reply = self(method, **params)
        assert "result" in reply, reply
        return reply["result"]

    def changes_until(self, version: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Every ``state.changed`` for this participant so far and to come, until one reaches ``version``."""
        def mine() -> list[dict[str, Any]]:
            return [e["params"] for e in self.events if e.get("method") == "state.changed"
                    and self.who in e["params"]["$meta"]["to"]]

        while not any(c["to"] >= version for c in mine()):
            self.events.append(self.h.recv(timeout))
        return mine()


def gap_free(changes: list[dict[str, Any]], since: int, upto: int) -> None:
    assert [(c["from"], c["to"]) for c in changes] == [(v - 1, v) for v in range(since + 1, upto + 1)]


def test_a_patch_on_one_host_reaches_a_subscriber_on_the_other_who_catches_up_anywhere(redis: RedisServer) -> None:
    pre = prefix()
    with host(redis.url, pre) as ha, host(redis.url, pre) as hb:
        alice, bob = Client(ha, "alice"), Client(hb, "bob")
        assert bob.ok("state.subscribe", doc="notes", since_version=0)["to"] == 0
        for i in range(5):
            assert alice.ok("state.patch", doc="notes", ops=[{"op": "add", "path": f"/k{i}", "value": i}]) == {
                "doc": "notes", "version": i + 1}
        changes = bob.changes_until(5)
        gap_free(changes, 0, 5)
        assert changes[0]["author"] == "alice" and changes[0]["ops"] == [{"op": "add", "path": "/k0", "value": 0}]
        assert bob.ok("state.get", doc="notes") == {"doc": "notes", "version": 5,
                                                   "value": {f"k{i}": i for i in range(5)}}
        # catch-up from since_version on the host that did not write the versions
        carol = Client(hb, "carol")
        caught = carol.ok("state.subscribe", doc="notes", since_version=2, compact=False)
        assert (caught["full"], caught["from"], caught["to"]) == (False, 2, 5)
        assert apply({"k0": 0, "k1": 1}, caught["ops"])[0] == {f"k{i}": i for i in range(5)}
        assert alice.ok("state.list") == bob.ok("state.list") == [{"doc": "notes", "version": 5}]


def test_two_hosts_racing_one_wins_overlaps_and_both_apply_disjoint_paths_seen_alike_everywhere(
        redis: RedisServer) -> None:
    pre = prefix()
    with host(redis.url, pre) as ha, host(redis.url, pre) as hb:
        alice, bob = Client(ha, "alice"), Client(hb, "bob")
        watch_a, watch_b = Client(ha, "wa"), Client(hb, "wb")
        alice.ok("state.set", doc="d", value={"title": "t", "body": "b"})
        watch_a.ok("state.subscribe", doc="d", since_version=1)
        watch_b.ok("state.subscribe", doc="d", since_version=1)
        version, winners = 1, set()
        for round in range(10):  # overlapping: both send /title from the same base at once
            sent = [(c, c.send("state.patch", doc="d", base_version=version,
                               ops=[{"op": "replace", "path": "/title", "value": f"{c.who}{round}"}]))
                    for c in (alice, bob)]
            replies = {c.who: c.reply(id) for c, id in sent}
            [winner] = [who for who, r in replies.items() if "result" in r]
            [loser] = [who for who, r in replies.items() if "error" in r]
            assert replies[winner]["result"]["version"] == version + 1
            error = replies[loser]["error"]
            assert error["code"] == CONFLICT
            assert error["data"] == {"doc": "d", "base_version": version, "current_version": version + 1,
                                     "paths": ["/title"], "authors": [winner]}
            version, winners = version + 1, winners | {winner}
        for round in range(10):  # disjoint: both are applied, one rebased on the other
            sent = [(c, c.send("state.patch", doc="d", base_version=version,
                               ops=[{"op": "replace", "path": path, "value": f"{c.who}{round}"}]))
                    for c, path in ((alice, "/title"), (bob, "/body"))]
            got = sorted(c.reply(id)["result"]["version"] for c, id in sent)
            assert got == [version + 1, version + 2]
            version += 2
        seen_a, seen_b = watch_a.changes_until(version), watch_b.changes_until(version)
        gap_free(seen_a, 1, version)
        assert [{**c, "$meta": None} for c in seen_a] == [{**c, "$meta": None} for c in seen_b]
        value = alice.ok("state.get", doc="d")
        assert value == bob.ok("state.get", doc="d") and value["version"] == version
        assert value["value"] == {"title": "alice9", "body": "bob9"}


def test_a_patch_retried_with_its_idempotency_key_is_applied_once_on_any_host(redis: RedisServer) -> None:
    pre = prefix()
    with host(redis.url, pre) as ha, host(redis.url, pre) as hb:
        on_a, on_b = Client(ha, "alice"), Client(hb, "alice")
        ops = [{"op": "add", "path": "/items/-", "value": "once"}]
        on_a.ok("state.set", doc="d", value={"items": []})
        first = on_a.ok("state.patch", doc="d", ops=ops, base_version=1, idempotency_key="k-1")
        assert on_a.ok("state.patch", doc="d", ops=ops, base_version=1, idempotency_key="k-1") == first
        assert on_b.ok("state.patch", doc="d", ops=ops, base_version=1, idempotency_key="k-1") == first
        assert on_b.ok("state.get", doc="d")["value"] == {"items": ["once"]}
        # the key is the participant's: another participant's same key is another patch
        assert Client(hb, "bob").ok("state.patch", doc="d", ops=ops, idempotency_key="k-1")["version"] == 3
        too_long = on_a("state.patch", doc="d", ops=ops, idempotency_key="k" * 257)
        assert too_long["error"]["code"] == -32602


def test_redis_killed_mid_burst_loses_no_acknowledged_patch_and_subscribers_get_exactly_what_they_missed(
        tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    pre = prefix()
    try:
        with host(server.url, pre) as ha, host(server.url, pre) as hb:
            alice, watcher = Client(ha, "alice"), Client(hb, "watcher")
            watcher.ok("state.subscribe", doc="burst", since_version=0)
            burst = [request("state.patch", "alice", doc="burst", ops=[{"op": "add", "path": f"/k{i}", "value": i}])
                     for i in range(300)]
            ha.send(*burst)
            replies = {}
            while len(replies) < 300:
                reply = ha.recv()
                replies[reply["id"]] = reply
                if len(replies) == 50:
                    server.kill()  # mid-burst: what follows is refused, what was acknowledged must survive
            acked = {r["result"]["version"] for r in replies.values() if "result" in r}
            refused = [r["error"] for r in replies.values() if "error" in r]
            assert len(acked) >= 50 and refused
            for error in refused:
                assert error["code"] == UNAVAILABLE and error["data"]["backend"] == "redis", error
                assert error["data"]["retry_after"] > 0 and "unreachable" in error["message"]
            down = watcher("state.get", doc="burst")["error"]  # the other host is refused too
            assert down["code"] == UNAVAILABLE and down["data"]["retry_after"] > 0

            server.start()  # same port, same directory: the AOF (fsynced on every write) is replayed
            version = retry(lambda: alice("state.patch", doc="burst", ops=[{"op": "add", "path": "/after",
                                                                          "value": True}]))["version"]
            # the watcher's host is not called: its listener reconnects and catches up by itself,
            # each version once, in order, none missed
            gap_free(watcher.changes_until(version), 0, version)
            value = watcher.ok("state.get", doc="burst")
            assert value["version"] == version and value["value"]["after"] is True
            present = {int(k[1:]) for k in value["value"] if k.startswith("k")}
            assert {ids_to_i(burst, id) for id, r in replies.items() if "result" in r} <= present
            assert max(acked) < version
    finally:
        server.stop()


def ids_to_i(burst: list[dict[str, Any]], id: int) -> int:
    return next(int(m["params"]["ops"][0]["path"][2:]) for m in burst if m["id"] == id)


def retry(call: Any, timeout: float = 20.0) -> Any:
    """``call()`` until it succeeds, waiting the ``retry_after`` a 4505 names (the protocol's back-off)."""
    deadline = time.monotonic() + timeout
    while True:
        reply = call()
        if "result" in reply:
            return reply["result"]
        assert reply["error"]["code"] == UNAVAILABLE, reply
        assert time.monotonic() < deadline, reply
        time.sleep(reply["error"]["data"]["retry_after"])


@pytest.mark.parametrize("fallback", [False, True])
def test_redis_down_at_start_fails_the_plugin_or_runs_in_memory_when_allowed(fallback: bool) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    env = {"BRIDGE_STATE_MEMORY_IF_UNAVAILABLE": "1"} if fallback else {}
    with host(url, prefix(), BRIDGE_STATE_REDIS_TIMEOUT="1", **env) as h:
        reply = Client(h, "p")("state.get", doc="d")
        if fallback:
            assert reply["result"] == {"doc": "d", "version": 0, "value": {}}
            h.wait_stderr(b"running in memory only (memory_if_unavailable)")
        else:
            assert reply["error"]["message"] == "plugin state failed to start"
            assert f"cannot reach the state Redis at {url}" in reply["error"]["data"]["error"]


def test_a_backend_that_is_not_a_redis_url_is_refused_at_start() -> None:
    with host("http://example.com", prefix()) as h:  # as any invalid setting: the host does not start
        assert h.wait() != 0
        h.wait_stderr(b"backend is 'embedded' or a URL starting with redis://, rediss://")


# ---- durability and access ---------------------------------------------------------------------

async def until_up(call: Any, timeout: float = 20.0) -> Any:
    """``await call()`` until it is not refused with 4505, waiting the ``retry_after`` it names."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except BridgeError as exc:
            assert exc.code == UNAVAILABLE and time.monotonic() < deadline, exc
            await asyncio.sleep(exc.data["retry_after"])


@pytest.mark.anyio
async def test_a_redis_that_lost_its_data_resets_every_host_instead_of_mixing_histories(
        tmp_path: Path, tasks: TaskGroup) -> None:
    server = RedisServer(tmp_path / "redis").start()  # no AOF: a restart loses everything
    try:
        a, b = await engines(tasks, server.url, "p")
        for i in range(3):
            await a.patch("d", [{"op": "add", "path": f"/old{i}", "value": i}], None, "p")
        watcher = Notifications()
        await b.refresh("d")
        b.subscribe("d", 3, "w", watcher)  # type: ignore[arg-type]
        server.kill()
        server.start()
        # a sees nothing there any more: it starts the document again, at version 1
        assert await until_up(lambda: a.patch("d", [{"op": "add", "path": "/new", "value": 1}], None, "p")) == 1
        await until_up(lambda: b.refresh("d"))
        assert (b.docs["d"].version, b.docs["d"].value) == (1, {"new": 1}) == (a.docs["d"].version, a.docs["d"].value)
        assert watcher.events("state.reset") == [{"doc": "d", "version": 1, "value": {"new": 1},
                                                  "$meta": {"to": ["w"]}}]
        assert watcher.events("state.changed") == []  # version 1 of another history is never sent as a change
        for docs in (a, b):
            await docs.close()
    finally:
        server.stop()


@pytest.mark.anyio
async def test_wait_replicas_acknowledges_only_what_a_replica_has(tmp_path: Path, tasks: TaskGroup) -> None:
    with replicated(tmp_path) as (primary, replica):
        docs = await RedisDocuments.open_redis(RedisOptions(primary.url, "p", wait_replicas=1, wait_timeout=0.3),
                                               tasks.start_soon)
        ops = [{"op": "add", "path": "/items/-", "value": 1}]
        await docs.patch("d", [{"op": "add", "path": "", "value": {"items": []}}], None, "p")
        assert await docs.patch("d", ops, None, "p", "k1") == 2
        assert Redis.from_url(replica.url).hget(Keys.of("p", "d").head, "version") == b"2"
        replica.kill()
        for attempt in range(2):  # the retry with the same key is not applied again, nor confirmed
            with pytest.raises(BridgeError) as unconfirmed:
                await docs.patch("d", ops, None, "p", "k2")
            assert unconfirmed.value.code == UNAVAILABLE
            assert unconfirmed.value.data == {"backend": "redis", "doc": "d", "version": 3, "replicas": 0,
                                              "retry_after": 0.3}
        assert docs.docs["d"].value == {"items": [1, 1]} and docs.docs["d"].version == 3
        await docs.close()


@pytest.mark.anyio
async def test_an_acl_user_limited_to_its_prefix_works_and_other_keys_are_refused_clearly(
        redis: RedisServer, tasks: TaskGroup) -> None:
    mine = prefix()
    direct = Redis.from_url(redis.url)
    direct.acl_setuser("team", enabled=True, passwords=["+pw"], keys=[f"{mine}:*"], channels=[f"{mine}:*"],
                       commands=["+@all", "-@dangerous"])
    url = f"redis://team:pw@127.0.0.1:{redis.port}/0"
    a, b = [await RedisDocuments.open_redis(RedisOptions(url, mine), tasks.start_soon) for _ in range(2)]
    watcher = Notifications()
    await b.refresh("d")
    b.subscribe("d", 0, "w", watcher)  # type: ignore[arg-type]
    assert await a.patch("d", [{"op": "add", "path": "/x", "value": 1}], None, "p") == 1
    await b.refresh("d")
    assert [c["to"] for c in watcher.events("state.changed")] == [1]
    outside = await RedisDocuments.open_redis(RedisOptions(url, "elsewhere"), tasks.start_soon)
    with pytest.raises(BridgeError) as refused:
        await outside.patch("d", [{"op": "add", "path": "/x", "value": 1}], None, "p")
    assert refused.value.code == UNAVAILABLE and "no permissions to access" in refused.value.message
    with pytest.raises(StoreError, match=r"cannot reach the state Redis at redis://team:\*\*\*@.*(WRONGPASS|invalid)"):
        await RedisDocuments.open_redis(RedisOptions(url.replace(":pw@", ":nope@"), mine), tasks.start_soon)
    direct.close()
    for docs in (a, b, outside):
        await docs.close()


def test_a_host_reaches_redis_through_sentinel(tmp_path: Path, redis: RedisServer) -> None:
    sentinel = RedisServer(tmp_path / "sentinel", sentinel_of=redis).start()
    try:
        pre = prefix()
        with host(f"redis+sentinel://127.0.0.1:{sentinel.port}/primary/0", pre) as ha, host(redis.url, pre) as hb:
            alice, bob = Client(ha, "alice"), Client(hb, "bob")
            bob.ok("state.subscribe", doc="d", since_version=0)
            assert alice.ok("state.patch", doc="d", ops=[{"op": "add", "path": "/x", "value": 1}])["version"] == 1
            gap_free(bob.changes_until(1), 0, 1)
    finally:
        sentinel.stop()


@pytest.mark.anyio
async def test_the_embedded_backend_takes_an_idempotency_key_too(tasks: TaskGroup) -> None:
    docs = await Documents.open(None, tasks.start_soon)
    ops = [{"op": "add", "path": "/items/-", "value": 1}]
    await docs.patch("d", [{"op": "add", "path": "", "value": {"items": []}}], None, "p")
    assert [await docs.patch("d", ops, 1, "p", "k") for _ in range(3)] == [2, 2, 2]
    assert await docs.patch("d", ops, None, "q", "k") == 3  # another participant's key
    assert docs.docs["d"].value == {"items": [1, 1]}
    await docs.close()


@pytest.mark.anyio
async def test_the_embedded_backend_applies_a_patch_sent_twice_at_once_once(tmp_path: Path, tasks: TaskGroup) -> None:
    """A retry that arrives while the first try is still being written (durably, in SQLite)
    waits for it and gets its version; a key whose patch failed may be tried again."""
    docs = await Documents.open(tmp_path / "state.db", tasks.start_soon)
    await docs.patch("d", [{"op": "add", "path": "", "value": {"items": []}}], None, "p")
    ops = [{"op": "add", "path": "/items/-", "value": 1}]
    assert await asyncio.gather(*(docs.patch("d", ops, 1, "p", "k") for _ in range(3))) == [2, 2, 2]
    assert docs.docs["d"].value == {"items": [1]}
    bad = [{"op": "remove", "path": "/nothing"}]
    for _ in range(2):
        with pytest.raises(BridgeError):
            await docs.patch("d", bad, None, "p", "k2")
    assert await docs.patch("d", ops, None, "p", "k2") == 3
    await docs.close()


def test_hosts_share_documents_over_tls(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", tls=make_certs(tmp_path / "certs")).start()
    try:
        pre = prefix()
        assert server.url.startswith("rediss://")
        with host(server.url, pre) as ha, host(server.url, pre) as hb:
            alice, bob = Client(ha, "alice"), Client(hb, "bob")
            bob.ok("state.subscribe", doc="d", since_version=0)
            assert alice.ok("state.patch", doc="d", ops=[{"op": "add", "path": "/x", "value": 1}])["version"] == 1
            gap_free(bob.changes_until(1), 0, 1)
        untrusted = server.url.split("?")[0]  # TLS without the CA: the certificate is not trusted
        with host(untrusted, pre) as h:
            reply = Client(h, "p")("state.get", doc="d")
            assert reply["error"]["message"] == "plugin state failed to start"
            assert "certificate verify failed" in reply["error"]["data"]["error"]
    finally:
        server.stop()


def test_hosts_share_documents_on_a_redis_cluster_each_document_in_one_slot(tmp_path: Path) -> None:
    from redis.cluster import RedisCluster, key_slot

    with redis_cluster(tmp_path / "cluster") as nodes:
        pre, docs = prefix(), [f"doc-{i}" for i in range(6)]
        with host(f"redis+cluster://127.0.0.1:{nodes[0].port}", pre) as ha, \
                host(f"redis+cluster://127.0.0.1:{nodes[1].port},127.0.0.1:{nodes[2].port}", pre) as hb:
            alice, bob = Client(ha, "alice"), Client(hb, "bob")
            for doc in docs:
                bob.ok("state.subscribe", doc=doc, since_version=0)
                alice.ok("state.set", doc=doc, value={"title": "t"})
            sent = [(c, c.send("state.patch", doc="doc-0", base_version=1,
                               ops=[{"op": "replace", "path": "/title", "value": c.who}])) for c in (alice, bob)]
            replies = [c.reply(id) for c, id in sent]
            assert sorted("result" in r for r in replies) == [False, True]
            assert [r["error"]["code"] for r in replies if "error" in r] == [CONFLICT]
            assert bob.ok("state.list") == [{"doc": "doc-0", "version": 2}] + [{"doc": d, "version": 1}
                                                                             for d in docs[1:]]
            expected = sorted([(d, 1) for d in docs] + [("doc-0", 2)])
            while len(seen := [e["params"] for e in bob.events if e.get("method") == "state.changed"]) < len(expected):
                bob.events.append(hb.recv())
            assert sorted((c["doc"], c["to"]) for c in seen) == expected
        cluster = RedisCluster(host="127.0.0.1", port=nodes[0].port)
        slots = {}
        for key in cluster.scan_iter(match=f"{pre}:state:{{*"):
            slots.setdefault(key.split(b"}")[0], set()).add(key_slot(key))
        assert len(slots) == len(docs) and all(len(s) == 1 for s in slots.values())
        assert len({s for group in slots.values() for s in group}) > 1  # spread over the cluster
        cluster.close()


def test_three_hosts_writing_at_once_converge_with_every_acknowledged_patch_once(redis: RedisServer) -> None:
    pre, n = prefix(), 1000
    with host(redis.url, pre) as h0, host(redis.url, pre) as h1, host(redis.url, pre) as h2:
        hosts = [h0, h1, h2]
        watchers = [Client(h, f"w{i}") for i, h in enumerate(hosts)]
        for w in watchers:
            w.ok("state.subscribe", doc="d", since_version=0)
        bursts = [[request("state.patch", f"p{i}", doc="d", ops=[{"op": "add", "path": f"/h{i}_{k}", "value": k}])
                   for k in range(n)] for i in range(3)]
        for h, burst in zip(hosts, bursts):
            h.send(*burst)  # all three at once, each without waiting for its replies
        versions = []
        for w, burst in zip(watchers, bursts):
            for message in burst:
                versions.append(w.reply(message["id"], timeout=60)["result"]["version"])
        assert sorted(versions) == list(range(1, 3 * n + 1))  # one version each, none shared, no gap
        seen = [[(c["from"], c["to"], orjson.dumps(c["ops"])) for c in w.changes_until(3 * n, timeout=30)]
                for w in watchers]
        assert [(f, t) for f, t, _ in seen[0]] == [(v - 1, v) for v in range(1, 3 * n + 1)]
        assert seen[0] == seen[1] == seen[2]
        values = [w.ok("state.get", doc="d") for w in watchers]
        assert values[0] == values[1] == values[2]
        assert values[0]["value"] == {f"h{i}_{k}": k for i in range(3) for k in range(n)}


@pytest.mark.anyio
async def test_only_callers_keys_are_kept_for_the_ttl(redis: RedisServer, tasks: TaskGroup) -> None:
    pre = prefix()
    [docs] = await engines(tasks, redis.url, pre, 1)
    await docs.patch("d", [{"op": "add", "path": "/a", "value": 1}], None, "p", "mine")
    await docs.patch("d", [{"op": "add", "path": "/b", "value": 1}], None, "p")  # the host's own key
    direct = Redis.from_url(redis.url)
    ttls = sorted(direct.pttl(k) for k in direct.scan_iter(match=Keys.of(pre, "d").idem_prefix + "*"))
    assert len(ttls) == 2 and 0 < ttls[0] <= 10_000 and 3_500_000 < ttls[1] <= 3_600_000
    direct.close()
    await docs.close()


class Watch(Notifications):
    """Notifications, with a wait for the ``state.changed`` that reaches a version."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def notify(self, method: str, params: Any = None) -> None:
        super().notify(method, params)
        self.changed.set()

    async def reaches(self, version: int) -> None:
        with anyio.fail_after(10):
            while not any(c["to"] >= version for c in self.events("state.changed")):
                self.changed.clear()
                await self.changed.wait()


@pytest.mark.anyio
async def test_hints_lost_with_the_subscription_are_caught_up_on_reconnection(
        redis: RedisServer, tasks: TaskGroup) -> None:
    a, b = await engines(tasks, redis.url, prefix())
    watcher = Watch()
    await b.refresh("d")
    b.subscribe("d", 0, "w", watcher)  # type: ignore[arg-type]
    await a.patch("d", [{"op": "add", "path": "/k0", "value": 0}], None, "p")
    await watcher.reaches(1)
    direct = Redis.from_url(redis.url)
    assert direct.client_kill_filter(_type="pubsub") >= 1  # every host's hint subscription drops
    for i in range(1, 4):  # written while b is not subscribed: their hints are lost to it
        await a.patch("d", [{"op": "add", "path": f"/k{i}", "value": i}], None, "p")
    await watcher.reaches(4)
    assert [(c["from"], c["to"]) for c in watcher.events("state.changed")] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    direct.close()
    for docs in (a, b):
        await docs.close()


# ---- group commit and hints carrying the entry ---------------------------------------------------

def calls(direct: Redis, command: str) -> int:
    """How many times Redis ran ``command`` since the last CONFIG RESETSTAT (scripts' commands too),
    not counting the failed ones (an EVALSHA of a script this server has not loaded yet is
    refused with NOSCRIPT, then loaded and sent again: a fresh server's first call counts twice)."""
    stats = direct.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0)) - int(stats.get("failed_calls", 0))


@pytest.mark.anyio
async def test_a_burst_on_one_document_is_one_script_call_acknowledged_in_order_seen_once_everywhere(
        redis: RedisServer, tasks: TaskGroup) -> None:
    a, b = await engines(tasks, redis.url, prefix())
    watcher = Watch()
    await a.patch("d", [{"op": "add", "path": "/k0", "value": 0}], None, "p")  # the script is loaded
    await b.refresh("d")
    b.subscribe("d", 1, "w", watcher)  # type: ignore[arg-type]
    direct = Redis.from_url(redis.url)
    direct.config_resetstat()
    n = 40
    acked = await asyncio.gather(*(a.patch("d", [{"op": "add", "path": f"/k{i}", "value": i}], None, "p")
                                   for i in range(1, n + 1)))
    assert acked == list(range(2, n + 2))  # in the order sent, each once
    assert calls(direct, "evalsha") == 1 and calls(direct, "xadd") == n and calls(direct, "publish") == n
    await watcher.reaches(n + 1)
    assert [(c["from"], c["to"]) for c in watcher.events("state.changed")] == [(v - 1, v) for v in acked]
    assert a.docs["d"].value == b.docs["d"].value == {f"k{i}": i for i in range(n + 1)}
    direct.close()
    for docs in (a, b):
        await docs.close()


@pytest.mark.anyio
async def test_a_burst_across_snapshots_trims_as_one_at_a_time_and_a_new_host_reads_it_exactly(
        redis: RedisServer, tasks: TaskGroup) -> None:
    pre = prefix()
    [a] = await engines(tasks, redis.url, pre, 1, history=5, snapshot_every=10, log_kept=0)
    await a.patch("d", [{"op": "add", "path": "/k0", "value": 0}], None, "p")
    acked = await asyncio.gather(*(a.patch("d", [{"op": "add", "path": f"/k{i % 7}", "value": i}], None, "p")
                                   for i in range(1, 95)))
    assert acked == list(range(2, 96))
    keys, direct = Keys.of(pre, "d"), Redis.from_url(redis.url)
    assert int(direct.hget(keys.snap, "version")) == 90  # snapshots inside the batch, the newest kept
    assert direct.xlen(keys.log) <= 5 + 10
    [b] = await engines(tasks, redis.url, pre, 1, history=5, snapshot_every=10, log_kept=0)
    await b.refresh("d")
    assert (b.docs["d"].version, b.docs["d"].value) == (95, a.docs["d"].value)
    assert [e.version for e in b.docs["d"].history] == [e.version for e in a.docs["d"].history] == [91, 92, 93, 94, 95]
    direct.close()
    for docs in (a, b):
        await docs.close()


async def one_batch(docs: Documents) -> list[Any]:
    """A batch with a conflict inside it and an idempotency key used twice, sent all at once."""
    await docs.patch("d", [{"op": "add", "path": "", "value": {"title": "t", "body": "b", "items": []}}], None, "s")
    sent = [(["add", "/n", 0], None, "dave", None),
            (["replace", "/title", "alice"], 1, "alice", None),
            (["replace", "/title", "bob"], 1, "bob", None),  # clashes with alice's, just before it
            (["replace", "/body", "bob"], 1, "bob", None),  # rebased on top of alice's
            (["add", "/items/-", "x"], None, "carol", "k"),
            (["add", "/items/-", "x"], None, "carol", "k")]  # the same key: applied once
    results = await asyncio.gather(*(docs.patch("d", [{"op": op, "path": path, "value": value}], base, who, key)
                                     for (op, path, value), base, who, key in sent), return_exceptions=True)
    return [r.data if isinstance(r, BridgeError) and r.code == CONFLICT else r for r in results]


@pytest.mark.anyio
async def test_a_conflict_and_a_repeated_key_inside_one_batch_are_decided_as_one_at_a_time(
        redis: RedisServer, tasks: TaskGroup) -> None:
    embedded = await Documents.open(None, tasks.start_soon)
    a, b = await engines(tasks, redis.url, prefix())
    seen: dict[str, list[Any]] = {"embedded": [], "redis": []}
    for docs, name in ((embedded, "embedded"), (a, "redis")):
        async def hook(info: dict[str, Any], name: str = name) -> None:  # what collab records a conflict from
            seen[name].append(info["value"])
        docs.conflict_hooks.append(hook)
    one_host = await one_batch(embedded)
    await a.refresh("d")
    direct = Redis.from_url(redis.url)
    direct.config_resetstat()
    on_redis = await one_batch(a)
    assert on_redis == one_host == [2, 3, {"doc": "d", "base_version": 1, "current_version": 3, "paths": ["/title"],
                                           "authors": ["alice"]}, 4, 5, 5]
    # the document as bob's patch was decided on: alice's, earlier in the same batch, in it
    assert seen["redis"] == seen["embedded"] == [{"title": "alice", "body": "b", "items": [], "n": 0}]
    assert calls(direct, "evalsha") == 2  # the setup, then the other six in one call
    await b.refresh("d")
    assert a.docs["d"].value == b.docs["d"].value == embedded.docs["d"].value == {
        "title": "alice", "body": "bob", "items": ["x"], "n": 0}
    direct.close()
    for docs in (embedded, a, b):
        await docs.close()


@pytest.mark.anyio
async def test_a_batch_refused_as_moved_is_decided_again_on_redis_each_patch_once(
        redis: RedisServer, tasks: TaskGroup) -> None:
    """A's mirror is behind (its listener kept from starting): its batch, decided there, is refused
    by the script; a catches up and decides each patch again: one now conflicts, none is applied twice."""
    pre = prefix()
    a, b = await engines(tasks, redis.url, pre)
    a._listening = True
    a._tried.set()
    assert await a.patch("d", [{"op": "add", "path": "", "value": {"x": 0}}], None, "p") == 1
    assert await b.patch("d", [{"op": "replace", "path": "/x", "value": 1}], None, "q") == 2
    direct = Redis.from_url(redis.url)
    direct.config_resetstat()
    sent = [([{"op": "replace", "path": "/x", "value": 2}], 1, None),  # fine on a's mirror, not on Redis's
            ([{"op": "add", "path": "/y", "value": 1}], None, None),
            ([{"op": "add", "path": "/z", "value": 1}], None, "k"),
            ([{"op": "add", "path": "/z", "value": 1}], None, "k")]
    lock = a._lock("d")
    await lock.acquire()  # held, so that all four queue for one batch
    burst = asyncio.gather(*(a.patch("d", ops, base, "p", key) for ops, base, key in sent), return_exceptions=True)
    while len(a._queues.get("d", [])) < len(sent):
        await asyncio.sleep(0)  # until each has queued
    lock.release()
    results = await burst
    refused = results[0]
    assert isinstance(refused, BridgeError) and refused.code == CONFLICT
    assert refused.data == {"doc": "d", "base_version": 1, "current_version": 2, "paths": ["/x"], "authors": ["q"]}
    assert results[1:] == [3, 4, 4]
    assert calls(direct, "evalsha") == 2  # "moved", then the batch decided again
    assert direct.xlen(Keys.of(pre, "d").log) == 4
    await b.refresh("d")
    assert a.docs["d"].value == b.docs["d"].value == {"x": 1, "y": 1, "z": 1}
    direct.close()
    for docs in (a, b):
        await docs.close()


@pytest.mark.anyio
async def test_a_hint_carrying_the_entry_is_applied_without_reading_the_log(redis: RedisServer,
                                                                           tasks: TaskGroup) -> None:
    a, b = await engines(tasks, redis.url, prefix())
    name = "notes ü 1"  # a name with spaces and more than ASCII in the hint
    watcher = Watch()
    await a.patch(name, [{"op": "add", "path": "/k0", "value": 0}], None, "p")
    await b.refresh(name)
    b.subscribe(name, 1, "w", watcher)  # type: ignore[arg-type]
    direct = Redis.from_url(redis.url)
    direct.config_resetstat()
    for i in range(1, 4):
        await a.patch(name, [{"op": "add", "path": f"/k{i}", "value": [i, "ü"]}], None, "p")
        await watcher.reaches(i + 1)
    assert calls(direct, "xrange") == 0  # neither a (its mirror current) nor b (the hints) read the log
    big = "x" * (64 * 1024)
    await a.patch(name, [{"op": "add", "path": "/big", "value": big}], None, "p")  # its hint has no entry
    await watcher.reaches(5)
    assert calls(direct, "xrange") == 1  # b read it from the log
    assert [(c["from"], c["to"], c["author"]) for c in watcher.events("state.changed")] == [
        (v - 1, v, "p") for v in range(2, 6)]
    assert b.docs[name].value == a.docs[name].value == {"k0": 0, "k1": [1, "ü"], "k2": [2, "ü"], "k3": [3, "ü"],
                                                        "big": big}
    assert list(b.docs[name].history) == list(a.docs[name].history)  # the same entries, from the hint or the log
    direct.close()
    for docs in (a, b):
        await docs.close()


@pytest.mark.anyio
async def test_a_hint_after_a_gap_or_in_the_old_format_falls_back_to_the_log(redis: RedisServer,
                                                                            tasks: TaskGroup) -> None:
    """Hints taken from Redis's pub/sub by the test, given to b one at a time (its listener kept from starting)."""
    pre = prefix()
    a, b = await engines(tasks, redis.url, pre)
    b._listening = True
    b._tried.set()
    watcher = Watch()
    direct = Redis.from_url(redis.url)
    hints = direct.pubsub(ignore_subscribe_messages=True)
    hints.subscribe(f"{pre}:state:changed")

    def next_hint() -> bytes:  # published before the patch's reply: already on its way
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            message = hints.get_message(timeout=1.0)  # None for the subscription's confirmation
            if message is not None:
                return message["data"]
        raise AssertionError("no hint")

    await a.patch("d", [{"op": "add", "path": "/k1", "value": 1}], None, "p")
    next_hint()
    await b.refresh("d")
    b.subscribe("d", 1, "w", watcher)  # type: ignore[arg-type]
    direct.config_resetstat()
    for i in (2, 3):
        await a.patch("d", [{"op": "add", "path": f"/k{i}", "value": i}], None, "p")
    skipped, third = next_hint(), next_hint()
    assert skipped.startswith(b"E ") and third.startswith(b"E ")
    await b._hint(third)  # b is at 1: a gap, so the log
    assert calls(direct, "xrange") == 1 and b.docs["d"].version == 3
    await b._hint(skipped)  # already there: nothing read
    await a.patch("d", [{"op": "add", "path": "/k4", "value": 4}], None, "p")
    await b._hint(next_hint())  # exactly the next: from the hint
    assert calls(direct, "xrange") == 1 and b.docs["d"].version == 4
    await a.patch("d", [{"op": "add", "path": "/k5", "value": 5}], None, "p")
    next_hint()
    await b._hint(f"{b._epochs['d']} 5 d".encode())  # the format of earlier hosts: the log
    assert calls(direct, "xrange") == 2 and b.docs["d"].version == 5
    await b._hint(b"E 1 2 not a hint")  # not one of ours: ignored
    await a.patch("d", [{"op": "add", "path": "/k6", "value": 6}], None, "p")
    next_hint()
    await b._hint(f"E {b._epochs['d']} 6 1.0 2 1 0 1\nd5[]".encode())  # its entry unreadable: the log
    assert calls(direct, "xrange") == 3 and b.docs["d"].version == 6
    assert [(c["from"], c["to"]) for c in watcher.events("state.changed")] == [(v - 1, v) for v in range(2, 7)]
    assert b.docs["d"].value == a.docs["d"].value == {f"k{i}": i for i in range(1, 7)}
    hints.close()
    direct.close()
    for docs in (a, b):
        await docs.close()
