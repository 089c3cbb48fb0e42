"""Host settings: every limit has a default here, an environment variable and a CLI flag.

A plain dataclass rather than pydantic-settings: that package costs ~100 ms of
import on this machine, more than the whole start-up budget.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any, Literal

FramingOption = Literal["auto", "ndjson", "lsp"]
LoopOption = Literal["auto", "asyncio", "uvloop"]
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True)
class Settings:
    """How the host serves. ``Settings.from_env()`` reads ``BRIDGE_*`` variables."""

    framing: FramingOption = field(default="auto", metadata={"env": "BRIDGE_FRAMING"})
    log_level: str = field(default="info", metadata={"env": "BRIDGE_LOG_LEVEL"})
    debug: bool = field(default=False, metadata={"env": "BRIDGE_DEBUG"})
    ready: bool = field(default=True, metadata={"env": "BRIDGE_READY"})
    #: Calls running at once (asyncio tasks; sync handlers still share max_threads workers).
    max_inflight: int = field(default=256, metadata={"env": "BRIDGE_MAX_INFLIGHT"})
    #: One caller's share of the call slots; 0 means half of ``max_inflight``.
    max_inflight_per_caller: int = field(default=0, metadata={"env": "BRIDGE_MAX_INFLIGHT_PER_CALLER"})
    #: Calls read but not yet started (each caller may hold half); past it a call gets -32005.
    max_queued: int = field(default=20_000, metadata={"env": "BRIDGE_MAX_QUEUED"})
    max_queued_bytes: int = field(default=64 * 1024 * 1024, metadata={"env": "BRIDGE_MAX_QUEUED_BYTES"})
    max_message_bytes: int = field(default=32 * 1024 * 1024, metadata={"env": "BRIDGE_MAX_MESSAGE_BYTES"})
    #: Longest LSP header block; a longer one is refused and the decoder reads on at the next header.
    max_header_bytes: int = field(default=8192, metadata={"env": "BRIDGE_MAX_HEADER_BYTES"})
    max_batch: int = field(default=1000, metadata={"env": "BRIDGE_MAX_BATCH"})
    max_threads: int = field(default=40, metadata={"env": "BRIDGE_MAX_THREADS"})
    shutdown_grace: float = field(default=5.0, metadata={"env": "BRIDGE_SHUTDOWN_GRACE"})
    loop: LoopOption = field(default="auto", metadata={"env": "BRIDGE_LOOP"})
    metrics_interval: float = field(default=0.0, metadata={"env": "BRIDGE_METRICS_INTERVAL"})
    stream_window: int = field(default=16, metadata={"env": "BRIDGE_STREAM_WINDOW"})
    cache_dir: str = field(default="", metadata={"env": "BRIDGE_CACHE_DIR"})
    cache_size: int = field(default=256 * 1024 * 1024, metadata={"env": "BRIDGE_CACHE_SIZE"})
    #: Warn (and count in rpc.metrics) when the event loop is blocked this long; 0 turns it off.
    loop_block_warning: float = field(default=0.25, metadata={"env": "BRIDGE_LOOP_BLOCK_WARNING"})
    #: Bad-input log lines per kind before they are summarised every ``bad_input_summary`` seconds.
    bad_input_log_limit: int = field(default=5, metadata={"env": "BRIDGE_BAD_INPUT_LOG_LIMIT"})
    bad_input_summary: float = field(default=60.0, metadata={"env": "BRIDGE_BAD_INPUT_SUMMARY"})
    #: The audit log (bridge/audit.py): on unless turned off; in audit_dir (default: the app's
    #: user data directory), rotated past audit_max_bytes, audit_backups older files kept.
    audit: bool = field(default=True, metadata={"env": "BRIDGE_AUDIT"})
    audit_dir: str = field(default="", metadata={"env": "BRIDGE_AUDIT_DIR"})
    audit_max_bytes: int = field(default=10 * 1024 * 1024, metadata={"env": "BRIDGE_AUDIT_MAX_BYTES"})
    audit_backups: int = field(default=3, metadata={"env": "BRIDGE_AUDIT_BACKUPS"})
    audit_max_entry_bytes: int = field(default=64 * 1024, metadata={"env": "BRIDGE_AUDIT_MAX_ENTRY_BYTES"})

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
                values[f.name] = _parse(f.metadata["env"], raw, f.default)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Setting name to environment variable."""
        return {f.name: f.metadata["env"] for f in dataclasses.fields(cls)}


def _parse(name: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected 1/0, true/false, yes/no or on/off")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        return raw.strip()
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r}: {exc}") from None
