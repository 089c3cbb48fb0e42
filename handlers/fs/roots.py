"""Confine client-supplied paths to allowed roots, and open what they name without a race.

A path is walked one component at a time from a descriptor of its root: each component is
opened relative to the directory before it with ``O_NOFOLLOW``, a symlink is read and its
target walked the same way, and ``..`` steps back to a directory already held. Nothing is
opened by a name that was checked earlier, so swapping a file for a symlink (or a directory
for one) during the walk cannot lead outside. Checking the path first and opening it by name
afterwards can: the name may change in between (111 escapes in 3,000 reads, issue 12).
Re-checking after opening instead would need the opened file's path, which POSIX cannot give
(a file may have many names, ``/proc/self/fd`` is Linux only); the walk never needs it.

The walk never steps outside a root, not even to follow a symlink, so a refusal says nothing
about what exists outside: a path outside, a symlink out and ``..`` out are refused from their
spelling alone, whatever they would reach.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections import deque
from pathlib import Path
from typing import Literal

if sys.platform != "win32":
    import fcntl

Reason = Literal["invalid", "outside", "dotdot", "symlink", "missing", "loop", "inaccessible", "irregular"]

#: Symlinks followed in one path before it counts as a loop (Linux's own limit).
MAX_SYMLINKS = 40

_O_PATH = getattr(os, "O_PATH", 0)  # Linux: a handle to look at, never opening a device or a FIFO
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_LOOKUP = _NOFOLLOW | (_O_PATH or os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
_READ = _NOFOLLOW | os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
#: Windows has no ``dir_fd``: there a path is resolved by name and the opened file checked (see ``_by_name``).
_WALK = os.open in os.supports_dir_fd and os.readlink in os.supports_dir_fd and bool(_NOFOLLOW)


class PathNotAllowed(ValueError):
    """A path a client may not use; ``reason`` says why in one word, the message in a sentence."""

    def __init__(self, path: str, reason: Reason, detail: str) -> None:
        super().__init__(f"path {path!r} is not allowed: {detail}")
        self.path = path
        self.reason = reason


class Found:
    """What a path names inside a root: its real path, its ``stat``, and (when walked) a
    descriptor of it and of its directory. Close it, or use it as a context manager."""

    __slots__ = ("path", "stat", "fd", "parent", "name")

    def __init__(self, path: Path, st: os.stat_result, fd: int = -1, parent: int = -1) -> None:
        self.path, self.stat, self.fd, self.parent, self.name = path, st, fd, parent, path.name

    def close(self) -> None:
        for fd in {self.fd, self.parent} - {-1}:
            os.close(fd)
        self.fd = self.parent = -1

    def __enter__(self) -> Found:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _under(path: Path, root: Path) -> bool:
    # Compares whole components, so /tmp/ab is not under /tmp/a.
    return path == root or path.is_relative_to(root)


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


class AllowedRoots:
    """Directories a client may reach; :meth:`open` walks a client's path to what it names inside one.

    Relative paths are taken from the working directory. A root that is a symlink allows its
    target, reached by either name.
    """

    def __init__(self, roots: list[Path]) -> None:
        if not roots:
            raise ValueError("at least one allowed root is needed")
        anchors: list[tuple[tuple[str, ...], Path]] = []
        real: dict[Path, tuple[int, int]] = {}
        for root in roots:
            path = Path(os.path.abspath(root))
            if not path.is_dir():
                raise ValueError(f"allowed root {str(root)!r} is not an existing directory")
            resolved = Path(os.path.realpath(path))
            real[resolved] = _identity(os.stat(resolved))
            anchors += [(path.parts, resolved), (resolved.parts, resolved)]
        self.roots: tuple[Path, ...] = tuple(real)
        self._identity = real
        # Outermost first, so that a path under nested roots is walked from the outer one.
        self._anchors = sorted(set(anchors), key=lambda a: (len(a[1].parts), -len(a[0])))

    def __repr__(self) -> str:
        return f"AllowedRoots({[str(r) for r in self.roots]!r})"

    def __contains__(self, path: Path) -> bool:
        return any(_under(path, root) for root in self.roots)

    def resolve(self, path: str) -> Path:
        """The real path of ``path`` if it exists under an allowed root; :class:`PathNotAllowed` otherwise."""
        with self.open(path) as found:
            return found.path

    def named_inside(self, path: str) -> bool:
        """Whether ``path``, a real path a watcher reported, lies under a root with no symlink on the
        way; a path gone since counts by its nearest ancestor still there."""
        while True:
            try:
                return self.resolve(path) == Path(path)
            except PathNotAllowed as exc:
                parent = os.path.dirname(path)
                if exc.reason != "missing" or parent == path:
                    return False
                path = parent

    def open(self, path: str) -> Found:
        """What ``path`` names under an allowed root, held open; :class:`PathNotAllowed` otherwise."""
        if not isinstance(path, str) or not path:
            raise PathNotAllowed(str(path), "invalid", "expected a non-empty string")
        if "\0" in path:
            raise PathNotAllowed(path, "invalid", "it contains a NUL byte")
        return self._walk(path) if _WALK else self._by_name(path)

    def open_file(self, path: str) -> int:
        """A blocking, read-only descriptor of the regular file ``path`` (close it)."""
        with self.open(path) as found:
            if not stat.S_ISREG(found.stat.st_mode):
                raise PathNotAllowed(path, "irregular", "it is not a regular file")
            # Opened again for reading from the directory the walk holds, and compared: a FIFO or a
            # symlink swapped in since fails here, and O_NONBLOCK keeps a FIFO from blocking the open.
            try:
                fd = os.open(found.name if found.parent != -1 else found.path, _READ, dir_fd=_dir(found.parent))
            except FileNotFoundError:
                raise PathNotAllowed(path, "missing", "it does not exist") from None
            except OSError:
                raise PathNotAllowed(path, "inaccessible", "it changed while being opened") from None
        opened = _identity(os.fstat(fd))
        if found.fd == -1:  # opened by name: where the system says the opened file is must be inside
            # (resolving the name again would race: a directory on the way swapped for a symlink
            # and back between two lookups passed a check of one and an identity of the other)
            where = _opened_path(fd)
            same = where is not None and Path(where) in self and opened == _identity(found.stat)
        else:
            same = opened == _identity(found.stat)
        if not same:
            os.close(fd)
            raise PathNotAllowed(path, "inaccessible", "it changed while being opened")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return fd

    def listdir(self, found: Found) -> list[tuple[str, os.stat_result]]:
        """The entries of the directory ``found`` with their own ``lstat`` (symlinks not followed:
        where one leads is not the listing's to say), sorted by name."""
        if found.fd == -1:
            with os.scandir(found.path) as it:
                names, fd = [entry.name for entry in it], None
        else:
            fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=found.fd)
            with os.scandir(fd) as it:
                names = [entry.name for entry in it]
        out = []
        try:
            for name in sorted(names):
                try:
                    out.append((name, os.stat(name if fd is not None else found.path / name, dir_fd=fd,
                                              follow_symlinks=False)))
                except OSError:  # gone since
                    continue
        finally:
            if fd is not None:
                os.close(fd)
        return out

    def _anchor(self, path: str) -> tuple[Path, tuple[str, ...]] | None:
        """The real root ``path`` is spelled under, and the parts after it (``..`` kept: the walk takes them)."""
        parts = Path(path).parts
        for prefix, real in self._anchors:
            if parts[: len(prefix)] == prefix:
                return real, parts[len(prefix):]
        return None

    def _open_root(self, path: str, root: Path) -> int:
        try:
            fd = os.open(root, (_O_PATH or os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            raise PathNotAllowed(path, "inaccessible", "its allowed root is gone") from None
        if _identity(os.fstat(fd)) != self._identity[root]:
            os.close(fd)
            raise PathNotAllowed(path, "inaccessible", "its allowed root was replaced")
        return fd

    def _walk(self, path: str) -> Found:
        anchor = self._anchor(path if os.path.isabs(path) else os.path.join(os.getcwd(), path))
        if anchor is None:
            raise PathNotAllowed(path, "outside", "it is outside the allowed roots")
        root, rest = anchor
        todo = deque((part, False) for part in rest)  # (name, came from a symlink)
        root_fd = self._open_root(path, root)
        held: list[tuple[str, int, os.stat_result]] = []  # the directories below the root, then the target
        hops = 0
        try:
            while todo:
                name, from_link = todo.popleft()
                if name == "..":
                    if not held:
                        if from_link:
                            raise PathNotAllowed(path, "symlink", "a symlink leads out of the allowed roots")
                        raise PathNotAllowed(path, "dotdot", "'..' climbs out of the allowed roots")
                    os.close(held.pop()[1])
                    continue
                here = held[-1][1] if held else root_fd
                step = _step(path, name, here)
                if step is not None:
                    fd, st = step
                    held.append((name, fd, st))
                    if todo and not stat.S_ISDIR(st.st_mode):
                        raise PathNotAllowed(path, "missing", "it does not exist (a parent is not a directory)")
                    continue
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise PathNotAllowed(path, "loop", "it runs into a symlink loop")
                target = _readlink(path, name, here)
                if target is None:  # no longer a symlink: look at it again
                    todo.appendleft((name, from_link))
                    continue
                parts = Path(target).parts
                if os.path.isabs(target):
                    anchor = self._anchor(target)
                    if anchor is None:
                        raise PathNotAllowed(path, "symlink", "a symlink leads out of the allowed roots")
                    for _, fd, _ in held:
                        os.close(fd)
                    held.clear()
                    os.close(root_fd)
                    root_fd = -1
                    root, parts = anchor
                    root_fd = self._open_root(path, root)
                todo.extendleft((part, True) for part in reversed(parts))
        except BaseException:
            for fd in (root_fd, *(fd for _, fd, _ in held)):
                if fd != -1:
                    os.close(fd)
            raise
        if not held:
            return Found(root, os.fstat(root_fd), root_fd)
        for _, fd, _ in held[:-2]:
            os.close(fd)
        parent = held[-2][1] if len(held) > 1 else root_fd
        if len(held) > 1:
            os.close(root_fd)
        return Found(root.joinpath(*(name for name, _, _ in held)), held[-1][2], held[-1][1], parent)

    def _by_name(self, path: str) -> Found:
        """Without ``dir_fd`` (Windows): the real path, checked; :meth:`open_file` then checks where
        the opened file is, from its descriptor (``_opened_path``), and that it is this one. A
        symlink there needs a privilege an app's user rarely has; a directory junction does not."""
        try:
            real = Path(os.path.realpath(path))
        except OSError:  # a symlink changed while it was read
            raise PathNotAllowed(path, "inaccessible", "it changed while being resolved") from None
        if real not in self:
            lexical = Path(os.path.abspath(path))
            if lexical in self or any(_under(lexical, Path(*prefix)) for prefix, _ in self._anchors):
                parts = Path(path).parts
                reason: Reason = "dotdot" if ".." in parts else "symlink"
                raise PathNotAllowed(path, reason, "it leads out of the allowed roots")
            raise PathNotAllowed(path, "outside", "it is outside the allowed roots")
        try:
            return Found(real, os.stat(real))
        except OSError as exc:
            raise _error(path, exc) from None


def _opened_path(fd: int) -> str | None:
    """The path of the file ``fd`` was opened on, from the descriptor itself (None: the system
    cannot say): Windows' final path of its handle, macOS' ``F_GETPATH``, Linux's ``/proc``."""
    if sys.platform == "win32":
        import ctypes
        import msvcrt

        size = 32768
        buffer = ctypes.create_unicode_buffer(size)
        length = ctypes.windll.kernel32.GetFinalPathNameByHandleW(  # type: ignore[attr-defined]
            ctypes.c_void_p(msvcrt.get_osfhandle(fd)), buffer, size, 0)  # type: ignore[attr-defined]
        if not 0 < length < size:
            return None
        path = buffer.value  # \\?\C:\... or \\?\UNC\server\share\...
        return "\\\\" + path[8:] if path.startswith("\\\\?\\UNC\\") else path.removeprefix("\\\\?\\")
    else:  # (else: a type checker for Windows skips it)
        try:
            if hasattr(fcntl, "F_GETPATH"):
                return os.fsdecode(fcntl.fcntl(fd, fcntl.F_GETPATH, bytes(1024)).rstrip(b"\0"))
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None


def _dir(fd: int) -> int | None:
    return None if fd == -1 else fd


def _step(path: str, name: str, here: int) -> tuple[int, os.stat_result] | None:
    """``name`` in the directory ``here`` opened without following it; None if it is a symlink."""
    try:
        fd = os.open(name, _LOOKUP, dir_fd=here)
    except OSError as exc:
        if not _O_PATH and exc.errno in (errno.ELOOP, errno.EMLINK):  # O_NOFOLLOW met a symlink (EMLINK: BSD)
            return None
        raise _error(path, exc) from None
    st = os.fstat(fd)
    if stat.S_ISLNK(st.st_mode):  # O_PATH | O_NOFOLLOW opens the symlink itself
        os.close(fd)
        return None
    return fd, st


def _readlink(path: str, name: str, here: int) -> str | None:
    try:
        return os.readlink(name, dir_fd=here)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return None
        raise _error(path, exc) from None


def _error(path: str, exc: OSError) -> PathNotAllowed:
    """The refusal for an error met inside a root (the walk never looks outside one)."""
    if exc.errno == errno.ENOENT:
        return PathNotAllowed(path, "missing", "it does not exist")
    if exc.errno == errno.ENOTDIR:
        return PathNotAllowed(path, "missing", "it does not exist (a parent is not a directory)")
    if exc.errno == errno.ELOOP:
        return PathNotAllowed(path, "loop", "it runs into a symlink loop")
    return PathNotAllowed(path, "inaccessible", f"it cannot be accessed ({exc.strerror})")
