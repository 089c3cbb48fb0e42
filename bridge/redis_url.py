"""Where a Redis is and how to reach it (the ``state`` documents, the shared reply cache): its URL
(plain, TLS, Unix socket, Sentinel, Cluster), the client options, and the URL as it may be logged
(without its password)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from redis import asyncio as aioredis

SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "rediss+sentinel://", "redis+cluster://",
           "rediss+cluster://")


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """How to reach Redis and how sure an acknowledgement is."""

    url: str
    prefix: str = "bridge"
    timeout: float = 5.0  # seconds for a connection or a reply
    wait_replicas: int = 0  # WAIT for this many replicas before acknowledging
    wait_timeout: float = 1.0  # seconds WAIT may take
    idempotency_ttl: float = 3600.0  # seconds a patch's idempotency key is remembered
    reconnect_max: float = 5.0  # seconds between reconnection attempts, at most
    #: log entries kept in Redis past the history, so a host that falls behind by up to this
    #: many versions catches up patch by patch (further behind, its subscribers get state.reset)
    log_kept: int = 1000


def slot(prefix: str, kind: str, name: str) -> str:
    """``<prefix>:<kind>:{<tag>}``, the start of every key of one ``name`` (a document, a session):
    the tag, a digest of the name, puts them all in one Redis Cluster slot."""
    return f"{prefix}:{kind}:{{{hashlib.blake2b(name.encode(), digest_size=10).hexdigest()}}}"


def redact(url: str) -> str:
    """``url`` without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return parts._replace(netloc=user + parts.netloc.rpartition("@")[2]).geturl()


def is_cluster(url: str) -> bool:
    return url.startswith(("redis+cluster://", "rediss+cluster://"))


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    """``host:port,host:port`` after any ``user:password@``."""
    hosts = []
    for host in netloc.rpartition("@")[2].split(","):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
        hosts.append((name, int(port or default_port)))
    return hosts


def connect(options: RedisOptions, retries: int = 1) -> aioredis.Redis:
    """A client for ``options.url``: ``redis://``, ``rediss://`` (TLS), ``unix://``,
    ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]`` (``rediss+sentinel``:
    TLS to the primary; ``?sentinel_password=`` if the sentinels have their own), or
    ``redis+cluster://[user:password@]host:port[,host:port...]`` (``rediss+cluster``: TLS, with
    ``?ssl_ca_certs=``), the nodes to discover a Redis Cluster from."""
    from redis import asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    common: dict[str, Any] = {
        "socket_timeout": options.timeout, "socket_connect_timeout": options.timeout,
        # one immediate retry, for a pooled connection that died with a restart; a retried
        # append is safe (every append carries an idempotency key), and then errors surface
        "retry": Retry(NoBackoff(), retries), "health_check_interval": 10,
    }
    url = options.url
    if not url.startswith(("redis+sentinel://", "rediss+sentinel://")) and not is_cluster(url):
        return aioredis.Redis.from_url(url, **common)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    auth = {"username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None}
    if is_cluster(url):
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        tls = {"ssl": True, **{k: v[0] for k, v in query.items() if k.startswith("ssl_")}} if (
            url.startswith("rediss+")) else {}
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in _hosts(parts.netloc, 6379)],
                            cluster_error_retry_attempts=max(retries, 1), **tls, **auth, **common)
    from redis.asyncio.sentinel import Sentinel, SentinelManagedSSLConnection

    hosts = _hosts(parts.netloc, 26379)
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError(f"a Sentinel URL names the service: {redact(url)} has no /<service>")
    sentinel_auth = {"password": query["sentinel_password"][0]} if "sentinel_password" in query else {}
    sentinel = Sentinel(hosts, sentinel_kwargs={**common, **sentinel_auth}, **common)
    tls = {"connection_class": SentinelManagedSSLConnection} if url.startswith("rediss+") else {}
    return sentinel.master_for(path[0], db=int(path[1]) if len(path) > 1 else 0, **tls, **auth)
