"""Host settings: every limit has a default here, an environment variable and a CLI flag.

A plain dataclass rather than pydantic-settings: that package costs ~100 ms of
import on this machine, more than the whole start-up budget.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any, Literal

FramingOption = Literal["auto", "ndjson", "lsp"]
LoopOption = Literal["auto", "asyncio", "uvloop"]
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
#: What ``cache_redis`` may start with (``bridge.redis_url.SCHEMES``, not imported: settings load first)
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "rediss+sentinel://", "redis+cluster://",
                  "rediss+cluster://")


def _setting(default: Any, env: str, help: str, *, flag: str | None = None, default_text: str | None = None,
             choices: tuple[str, ...] | None = None, size: bool = False) -> Any:
    """A setting: its default, its environment variable, and the help of its command-line flag.
    ``size``: a number of bytes, which may be written with a unit (``parse_size``)."""
    return field(default=default, metadata={"env": env, "help": help, "flag": flag, "default_text": default_text,
                                            "choices": choices, "size": size})


_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1024**3, "gb": 1000**3, "gib": 1024**3, "t": 1024**4, "tb": 1000**4, "tib": 1024**4}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Bytes from ``"32MiB"``, ``"1GB"``, ``"512 KiB"``, ``"64k"`` or ``"4096"``: KB, MB, GB are
    powers of 1000, KiB, MiB, GiB (and K, M, G) powers of 1024. ValueError if it is none.

    (A dozen lines rather than a dependency: humanfriendly's ``parse_size`` reads ``MB`` as 1000**2
    too, but is a large package to import at start-up for this.)"""
    if isinstance(text, int):
        return text
    match = _SIZE.fullmatch(text)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise ValueError(f"{text!r} is not a size: write bytes, or a number with a unit (32MiB, 1GB, 512KiB)")
    return int(float(match.group(1)) * unit)


@dataclass(frozen=True)
class Settings:
    """How the host serves. ``Settings.from_env()`` reads ``BRIDGE_*`` variables."""

    framing: FramingOption = _setting("auto", "BRIDGE_FRAMING", "message framing; auto decides from the first bytes")
    log_level: str = _setting("info", "BRIDGE_LOG_LEVEL", "stderr log level", choices=_LOG_LEVELS)
    debug: bool = _setting(False, "BRIDGE_DEBUG", "log every call with its timing; tracebacks in error replies",
                           flag="--debug")
    ready: bool = _setting(True, "BRIDGE_READY", "do not send the $/ready notification", flag="--no-ready")
    max_inflight: int = _setting(256, "BRIDGE_MAX_INFLIGHT", "calls running at once; later ones wait in their "
                                 "caller's queue (sync handlers still share max_threads workers)")
    max_inflight_per_caller: int = _setting(0, "BRIDGE_MAX_INFLIGHT_PER_CALLER",
                                            "one caller's share of the call slots", default_text="half of max-inflight")
    max_queued: int = _setting(20_000, "BRIDGE_MAX_QUEUED",
                               "calls read but not started (each caller may hold half); past it -32005")
    max_queued_bytes: int = _setting(64 * 1024 * 1024, "BRIDGE_MAX_QUEUED_BYTES", "bytes of calls read but not started",
                                     default_text="64 MiB", size=True)
    max_message_bytes: int = _setting(32 * 1024 * 1024, "BRIDGE_MAX_MESSAGE_BYTES", "largest message accepted",
                                      default_text="32 MiB", size=True)
    max_header_bytes: int = _setting(8192, "BRIDGE_MAX_HEADER_BYTES",
                                     "longest LSP header block; a longer one is refused, reading goes on at the next", size=True)
    max_batch: int = _setting(1000, "BRIDGE_MAX_BATCH", "most entries in a batch array")
    max_threads: int = _setting(40, "BRIDGE_MAX_THREADS", "worker threads for sync handlers")
    shutdown_grace: float = _setting(5.0, "BRIDGE_SHUTDOWN_GRACE", "seconds in-flight calls get at shutdown")
    loop: LoopOption = _setting("auto", "BRIDGE_LOOP", "event loop; auto is uvloop where installed")
    metrics_interval: float = _setting(0.0, "BRIDGE_METRICS_INTERVAL", "seconds between $/metrics notifications; 0 is off")
    stream_window: int = _setting(16, "BRIDGE_STREAM_WINDOW", "chunks a stream may send before the caller grants more, "
                                  "when it asks for pacing without a window")
    cache_dir: str = _setting("", "BRIDGE_CACHE_DIR", "where cached replies persist",
                              default_text="the user cache directory, bridge/<app name>")
    cache_size: int = _setting(256 * 1024 * 1024, "BRIDGE_CACHE_SIZE", "bytes of cached replies kept on disk",
                               default_text="256 MiB", size=True)
    cache_redis: str = _setting("", "BRIDGE_CACHE_REDIS", "a redis:// or rediss:// URL (Sentinel: redis+sentinel://) "
                                "whose Redis every host shares cached replies through, below each host's memory; "
                                "if it is unreachable, replies are cached on this host until it is back",
                                default_text="none: replies cached on this host only")
    loop_block_warning: float = _setting(0.25, "BRIDGE_LOOP_BLOCK_WARNING",
                                         "warn (and count in rpc.metrics) when the event loop is blocked this many "
                                         "seconds; 0 is off")
    bad_input_log_limit: int = _setting(5, "BRIDGE_BAD_INPUT_LOG_LIMIT", "bad-input log lines per kind before summaries")
    bad_input_summary: float = _setting(60.0, "BRIDGE_BAD_INPUT_SUMMARY", "seconds between bad-input summaries")
    audit: bool = _setting(True, "BRIDGE_AUDIT", "keep no audit log", flag="--no-audit")
    audit_dir: str = _setting("", "BRIDGE_AUDIT_DIR", "where the audit log goes", default_text="the user data directory")
    audit_max_bytes: int = _setting(10 * 1024 * 1024, "BRIDGE_AUDIT_MAX_BYTES", "audit log size before it rotates",
                                    default_text="10 MiB", size=True)
    audit_backups: int = _setting(3, "BRIDGE_AUDIT_BACKUPS", "rotated audit logs kept")
    audit_max_entry_bytes: int = _setting(64 * 1024, "BRIDGE_AUDIT_MAX_ENTRY_BYTES",
                                          "largest audit entry before fields are cut", default_text="64 KiB", size=True)

    def __post_init__(self) -> None:
        if self.framing not in ("auto", "ndjson", "lsp"):
            raise ValueError(f"framing must be auto, ndjson or lsp, not {self.framing!r}")
        if self.loop not in ("auto", "asyncio", "uvloop"):
            raise ValueError(f"loop must be auto, asyncio or uvloop, not {self.loop!r}")
        if self.log_level.lower() not in _LOG_LEVELS:
            raise ValueError(f"log level must be one of {', '.join(_LOG_LEVELS)}, not {self.log_level!r}")
        for name in ("max_inflight", "max_message_bytes", "max_batch", "max_threads", "cache_size", "stream_window",
                     "max_queued", "max_queued_bytes", "max_header_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_inflight_per_caller < 0 or self.bad_input_log_limit < 0:
            raise ValueError("max_inflight_per_caller and bad_input_log_limit must not be negative")
        if self.loop_block_warning < 0 or self.bad_input_summary < 0:
            raise ValueError("loop_block_warning and bad_input_summary must not be negative")
        if self.audit_max_bytes < 1 or self.audit_backups < 0 or self.audit_max_entry_bytes < 256:
            raise ValueError("audit_max_bytes must be at least 1, audit_backups not negative, "
                             "audit_max_entry_bytes at least 256")
        if self.cache_redis and not self.cache_redis.startswith(_REDIS_SCHEMES):
            given = self.cache_redis.split("://")[0] + "://..." if "://" in self.cache_redis else "no scheme"
            raise ValueError(f"cache_redis must be a URL starting with {', '.join(_REDIS_SCHEMES)}, not {given}")
        if self.metrics_interval < 0:
            raise ValueError("metrics_interval must not be negative")
        if self.shutdown_grace < 0:
            raise ValueError("shutdown_grace must not be negative")

    @property
    def caller_share(self) -> int:
        """Call slots one caller may hold at once."""
        share = self.max_inflight_per_caller or max(1, self.max_inflight // 2)
        return min(share, self.max_inflight)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``BRIDGE_*`` variables, then ``overrides`` that are not None."""
        if env is None:
            env = os.environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is not None and raw != "":
                values[f.name] = _parse(f.metadata["env"], raw, f.default, f.metadata["size"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def options(cls) -> list[dataclasses.Field[Any]]:
        """The settings, with ``metadata`` holding ``env``, ``help``, ``flag`` and ``default_text``."""
        return list(dataclasses.fields(cls))

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Setting name to environment variable."""
        return {f.name: f.metadata["env"] for f in dataclasses.fields(cls)}


def _parse(name: str, raw: str, default: Any, size: bool = False) -> Any:
    try:
        if isinstance(default, bool):
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected 1/0, true/false, yes/no or on/off")
        if size:
            return parse_size(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        return raw.strip()
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r}: {exc}") from None
