"""A real ``redis-server`` for tests: on a free port, in a temporary directory, with no config
file (only command-line options), answering PING before the test goes on; stopped at the end.

``RedisServer(directory, appendonly=True)`` keeps an AOF fsynced on every write
(``appendfsync always``), so ``kill()`` then ``start()`` on the same port and directory comes
back with every acknowledged write. ``extra`` adds options (``--replicaof``), ``sentinel_of``
makes a Sentinel, ``tls`` (``make_certs()``) serves TLS only; ``redis_cluster()`` starts a
Cluster. Skipped (failed under CI) where redis-server (or redis-cli, openssl) is missing.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from parts import require


def make_certs(directory: Path) -> Path:
    """A CA and a certificate for 127.0.0.1 signed by it (``ca.crt``, ``server.crt``, ``server.key``
    in ``directory``), made by the openssl command (skipped where it is missing)."""
    openssl = require("openssl")
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    # Extensions as Python 3.13's default strict verification (VERIFY_X509_STRICT) wants them.
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
        "-subj", "/CN=bridge test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (directory / "ext").write_text("subjectAltName=IP:127.0.0.1\nauthorityKeyIdentifier=keyid,issuer\n"
                                   "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                                   "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "server.crt", "-days", "1", "-extfile", "ext")
    return directory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server process; ``url`` reaches it."""

    def __init__(self, directory: Path, *, appendonly: bool = False, port: int | None = None,
                 extra: Sequence[str] = (), sentinel_of: RedisServer | None = None, tls: Path | None = None
                 ) -> None:
        self.binary = require("redis-server")
        self.directory, self.appendonly, self.extra = directory, appendonly, list(extra)
        self.sentinel_of = sentinel_of  # a Sentinel monitoring that server as ``primary``
        self.tls = tls  # make_certs()'s directory: TLS only, on ``port``
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls / 'ca.crt'}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start it and return once it answers PING (an error naming its log if it does not)."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--daemonize", "no", "--logfile", "redis.log"]
        if self.sentinel_of is not None:  # Sentinel rewrites its config file: one of its own, in its directory
            config = self.directory / "sentinel.conf"
            config.write_text(f"sentinel monitor primary 127.0.0.1 {self.sentinel_of.port} 1\n")
            args[1:1] = [str(config), "--sentinel"]
        else:
            args += ["--save", ""]
        if self.tls is not None:
            args[1:3] = ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no",
                         "--tls-cert-file", str(self.tls / "server.crt"),
                         "--tls-key-file", str(self.tls / "server.key"),
                         "--tls-ca-cert-file", str(self.tls / "ca.crt")]
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        args += self.extra  # e.g. ["--replicaof", "127.0.0.1", "6379"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        try:
            while not self.ping():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.directory / "redis.log").read_text(errors="replace") if (
                        self.directory / "redis.log").exists() else ""
                    raise RuntimeError(f"redis-server on port {self.port} did not answer PING:\n{log}")
                time.sleep(0.01)  # polling the port for readiness: there is nothing to wait on instead
        except BaseException:
            self.kill()  # never left running by a failed start
            raise
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as plain:
                s = plain
                if self.tls is not None:
                    context = ssl.create_default_context(cafile=self.tls / "ca.crt")
                    s = context.wrap_socket(plain, server_hostname="127.0.0.1")
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: what a crash looks like (only fsynced writes survive)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def redis_server(directory: Path, *, appendonly: bool = False) -> Iterator[RedisServer]:
    """A started RedisServer, stopped when the block ends."""
    server = RedisServer(directory, appendonly=appendonly)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def replicated(directory: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    """A primary and one replica, once the replica acknowledges writes (WAIT 1); stopped at the end."""
    from redis import Redis

    primary = RedisServer(directory / "primary", extra=["--repl-diskless-sync-delay", "0"]).start()
    replica = RedisServer(directory / "replica", extra=["--replicaof", "127.0.0.1", str(primary.port)])
    try:
        replica.start()
        with Redis.from_url(primary.url) as direct:
            deadline = time.monotonic() + 10
            while direct.set("synced", 1) and direct.wait(1, 100) < 1:  # readiness: the replica acknowledges
                assert time.monotonic() < deadline, "the replica never acknowledged a write"
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


@contextmanager
def redis_cluster(directory: Path, nodes: int = 3, timeout: float = 20.0) -> Iterator[list[RedisServer]]:
    """A Redis Cluster of ``nodes`` primaries (no replicas), every slot assigned, stopped at the end."""
    from redis import Redis

    servers = [RedisServer(directory / f"node{i}", extra=["--cluster-enabled", "yes", "--cluster-config-file",
                                                          "nodes.conf", "--cluster-port", str(free_port())])
               for i in range(nodes)]
    try:
        for server in servers:
            server.start()
        subprocess.run([require("redis-cli"), "--cluster", "create", *(f"127.0.0.1:{s.port}" for s in servers),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=timeout)
        deadline = time.monotonic() + timeout
        for server in servers:  # readiness: every node sees every slot served
            with Redis(port=server.port) as client:
                while client.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                    assert time.monotonic() < deadline, f"the cluster on port {server.port} never became ok"
                    time.sleep(0.01)
        yield servers
    finally:
        for server in servers:
            server.stop()
