"""Rust's target triple of this host, which Tauri appends to a sidecar's file name."""

from __future__ import annotations

_ARCH = {"amd64": "x86_64", "x86_64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64",
         "i386": "i686", "i686": "i686", "x86": "i686", "armv7l": "armv7", "riscv64": "riscv64gc",
         "ppc64le": "powerpc64le", "s390x": "s390x"}


def target_triple(system: str | None = None, machine: str | None = None, libc: str | None = None) -> str:
    """Rust's name for this host (what ``rustc -vV`` prints as ``host``), which Tauri appends
    to a sidecar's name: ``x86_64-unknown-linux-gnu``, ``aarch64-apple-darwin``,
    ``x86_64-pc-windows-msvc``."""
    import platform

    system = (system or platform.system()).lower()
    raw = (machine or platform.machine()).lower()
    arch = _ARCH.get(raw)
    if arch is None:
        raise ValueError(f"no target triple known for machine {raw!r}; pass --target-triple")
    if system == "darwin":
        return f"{arch}-apple-darwin"
    if system == "windows":
        return f"{arch}-pc-windows-msvc"
    if system == "linux":
        if libc is None:
            libc = platform.libc_ver()[0] or "glibc"
        env = "musl" if "musl" in libc.lower() else "gnu"
        if arch == "armv7":
            return f"armv7-unknown-linux-{env}eabihf"
        return f"{arch}-unknown-linux-{env}"
    raise ValueError(f"no target triple known for system {system!r}; pass --target-triple")
