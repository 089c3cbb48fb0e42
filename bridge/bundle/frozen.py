"""The bundle's run time: what the frozen executable does on every start.

Imported by the frozen entry point, so only what bridge already imports at start-up is
imported at the top (``os``, ``sys``).
"""

from __future__ import annotations

import os
import sys


def frozen_main(app: str, argv: list[str] | None = None, *, onefile: bool = False) -> int:
    """The bundle's entry point: ``serve APP`` plus the flags given; ``serve`` itself may be
    given first (``bridge-host serve --debug``). ``discover``, ``plugins`` and ``--version``
    work as with the ``bridge`` command."""
    from ..cli import main

    if onefile:
        _exit_with_bootloader()
    # `serve` puts the working directory first on sys.path to find the app; frozen, files there
    # would shadow the bundled modules (PyInstaller's finder is a sys.path hook), the app's own
    # too if its package is a namespace package. So the app is imported before, and the
    # working directory goes last: a fallback only.
    import importlib

    importlib.import_module(app.partition(":")[0])
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    return main(frozen_argv(app, sys.argv[1:] if argv is None else argv))


def frozen_argv(app: str, argv: list[str]) -> list[str]:
    """The ``bridge`` command line the bundle's own arguments stand for."""
    if argv[:1] == ["serve"]:
        argv = argv[1:]
    elif argv[:1] == ["discover"]:
        return ["discover", app, *argv[1:]]
    elif argv[:1] == ["plugins"] or argv[:1] == ["--version"]:
        return argv
    return ["serve", app, *argv]


def _exit_with_bootloader() -> None:
    """A onefile bundle runs as a child of PyInstaller's bootloader, which forwards signals
    but cannot forward SIGKILL, nor delete the folder it unpacked the bundle into once killed
    (the shell plugin's kill(), and Tauri's at exit, are SIGKILL). On Linux, ask for SIGTERM
    when the bootloader dies, so a killed sidecar never leaves this process behind, and delete
    that folder on the way out if the bootloader is gone (~30 MB left in the temp folder for
    every kill otherwise)."""
    if not sys.platform.startswith("linux"):
        return
    import atexit
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
        bootloader = os.getppid()
        parent = os.readlink(f"/proc/{bootloader}/exe")
    except (OSError, AttributeError):
        return
    if os.path.realpath(parent) != os.path.realpath(sys.executable):  # it died before prctl took effect
        raise SystemExit(1)
    unpacked = getattr(sys, "_MEIPASS", None)
    if unpacked:
        atexit.register(_delete_if_orphaned, unpacked, bootloader)  # registered first: runs last


def _delete_if_orphaned(unpacked: str, bootloader: int) -> None:
    """Delete ``unpacked`` if the bootloader that would have is gone. The files this process
    mapped stay readable until it exits (Linux unlinks, it does not pull them away)."""
    if os.getppid() != bootloader:
        import shutil

        shutil.rmtree(unpacked, ignore_errors=True)
