"""Runs one service (or health check) for the host so that nothing of it outlives the host.

    python -I -S shim.py HOST_PID STATUS_FD -- COMMAND [ARGS...]

The host starts the shim as the leader of a new process group; the command runs in that
group as the shim's child, with the shim's stdio. The shim

- writes ``pid <n>`` (or ``error <errno>`` if the command could not start) to STATUS_FD;
- asks Linux to SIGTERM it when the host dies (``PR_SET_PDEATHSIG``; elsewhere it checks its
  parent every 0.2 s) and then kills every descendant (frozen with SIGSTOP first, found in
  /proc) and its whole group: a ``kill -9`` of the host reaches the command's own children;
- is the children's subreaper on Linux, so a grandchild that leaves the group by
  ``setsid`` is still its descendant;
- while the host lives, leaves the SIGTERM/SIGINT/SIGHUP of a stop to the command (they
  reach the whole group);
- when the command exits, kills what it left behind and exits the same way (same code, or
  the same signal), which is what the host reports.

Standard library only and no threads: it forks, and it starts in ~15 ms.
"""

from __future__ import annotations

import os
import signal
import sys

TYPE_CHECKING = False  # typing costs more to import than the rest of the shim
if TYPE_CHECKING:
    from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def main(argv: list[str]) -> None:
    host, status_fd = int(argv[1]), int(argv[2])
    command = argv[4:]
    os.set_inheritable(status_fd, False)
    prctl = _prctl()
    me = os.getpid()

    def check(*_: object) -> None:
        if os.getpid() == me and os.getppid() != host:  # not in the forked child before its exec
            _host_gone()

    for sig in _STOP_SIGNALS:
        signal.signal(sig, check)
    if prctl is not None:
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    else:  # no parent-death signal here: look for the host's death instead
        signal.signal(signal.SIGALRM, check)
        signal.setitimer(signal.ITIMER_REAL, 0.2, 0.2)
    if os.getppid() != host:  # the host died before the shim could hear of it
        os._exit(1)

    child = _start(command, prctl)
    if isinstance(child, OSError):
        os.write(status_fd, b"error %d\n" % (child.errno or 0))
        os.close(status_fd)
        os._exit(127)
    os.write(status_fd, b"pid %d\n" % child)
    os.close(status_fd)

    while True:  # as a subreaper, orphans of the command are reaped here too
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(1)
        if pid == child:
            break
    for pid in _freeze_descendants():
        _kill(pid, signal.SIGKILL)
    _exit_like(status)


def _start(command: list[str], prctl: Any) -> int | OSError:
    """Fork and exec ``command``; its pid, or the error exec raised."""
    err_r, err_w = os.pipe()  # close-on-exec: EOF with nothing in it means exec succeeded
    shim = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(err_r)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; exec keeps that
                signal.signal(sig, signal.SIG_DFL)
            if prctl is not None:  # for when the shim itself is killed
                prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
                if os.getppid() != shim:
                    os._exit(127)
            os.execvp(command[0], command)
        except OSError as exc:
            os.write(err_w, str(exc.errno or 0).encode())
        finally:
            os._exit(127)
    os.close(err_w)
    with os.fdopen(err_r, "rb") as err:
        failed = err.read()
    if failed:
        os.waitpid(pid, 0)
        code = int(failed)
        return OSError(code, os.strerror(code))
    return pid


def _host_gone() -> None:
    """The host died: nothing it started may outlive it. The shim dies last, with its group."""
    for pid in _freeze_descendants():
        _kill(pid, signal.SIGKILL)
    os.killpg(0, signal.SIGKILL)


def _freeze_descendants() -> set[int]:
    """Every descendant of the shim, each stopped (SIGSTOP) so none can fork away meanwhile."""
    me = os.getpid()
    frozen: set[int] = set()
    for _ in range(16):  # a bounded number of rounds: each one freezes what the last one missed
        found = _descendants(me) - frozen
        if not found:
            break
        for pid in found:
            _kill(pid, signal.SIGSTOP)
        frozen |= found
    return frozen


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return set()  # no /proc (macOS): the process group is all there is
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for pid in children.get(todo.pop(), ()):
            if pid not in found:
                found.add(pid)
                todo.append(pid)
    return found


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _exit_like(status: int) -> None:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crashed command already dumped its core
        except (ImportError, OSError, ValueError):
            pass
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(status))


def _prctl() -> Any:
    """libc's prctl on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError, ImportError):
        return None


if __name__ == "__main__":
    main(sys.argv)
