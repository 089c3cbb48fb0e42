"""Moved to ``bridge.redis_url`` (the shared reply cache uses it too); re-exported here so
``bridge.builtins.state.redis_url`` keeps working."""

from bridge.redis_url import SCHEMES, RedisOptions, connect, is_cluster, redact

__all__ = ["SCHEMES", "RedisOptions", "connect", "is_cluster", "redact"]
