"""Confine client-supplied paths to allowed roots: resolve symlinks and ``..``, then check containment."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Literal

Reason = Literal["invalid", "outside", "dotdot", "symlink", "missing", "loop", "inaccessible"]


class PathNotAllowed(ValueError):
    """A path a client may not use; ``reason`` says why in one word, the message in a sentence."""

    def __init__(self, path: str, reason: Reason, detail: str) -> None:
        super().__init__(f"path {path!r} is not allowed: {detail}")
        self.path = path
        self.reason = reason


def _under(path: Path, root: Path) -> bool:
    # Compares whole components, so /tmp/ab is not under /tmp/a.
    return path == root or path.is_relative_to(root)


class AllowedRoots:
    """Directories a client may reach; :meth:`resolve` turns a client's path into a real path inside one.

    Relative paths are taken from the working directory. Roots are resolved once, so a root that
    is a symlink allows its target, reached either way.
    """

    def __init__(self, roots: list[Path]) -> None:
        if not roots:
            raise ValueError("at least one allowed root is needed")
        given: list[Path] = []
        real: list[Path] = []
        for root in roots:
            path = Path(os.path.abspath(root))
            if not path.is_dir():
                raise ValueError(f"allowed root {str(root)!r} is not an existing directory")
            given.append(path)
            real.append(Path(os.path.realpath(path)))
        self._given = given  # as written, to tell a symlink escape from a path that starts outside
        self.roots: tuple[Path, ...] = tuple(dict.fromkeys(real))

    @classmethod
    def default(cls) -> AllowedRoots:
        """The working directory and the user's home (whichever exist)."""
        candidates = [Path.cwd(), Path.home()]
        return cls([p for p in candidates if p.is_dir()])

    def __repr__(self) -> str:
        return f"AllowedRoots({[str(r) for r in self.roots]!r})"

    def __contains__(self, path: Path) -> bool:
        return any(_under(path, root) for root in self.roots)

    def resolve(self, path: str) -> Path:
        """The real path of ``path`` if it exists under an allowed root; :class:`PathNotAllowed` otherwise."""
        if not isinstance(path, str) or not path:
            raise PathNotAllowed(str(path), "invalid", "expected a non-empty string")
        if "\0" in path:
            raise PathNotAllowed(path, "invalid", "it contains a NUL byte")
        real = Path(os.path.realpath(path))
        if real not in self:
            raise PathNotAllowed(path, *self._why_outside(path, real))
        # Containment before existence, so a refusal says nothing about what exists outside the roots.
        try:
            os.stat(real)
        except FileNotFoundError:
            raise PathNotAllowed(path, "missing", "it does not exist") from None
        except NotADirectoryError:
            raise PathNotAllowed(path, "missing", "it does not exist (a parent is not a directory)") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PathNotAllowed(path, "loop", "it runs into a symlink loop") from None
            raise PathNotAllowed(path, "inaccessible", f"it cannot be accessed ({exc.strerror})") from None
        return real

    def _why_outside(self, path: str, real: Path) -> tuple[Reason, str]:
        def inside(p: Path) -> bool:
            lexical = Path(os.path.abspath(p))  # ``..`` collapsed, symlinks untouched
            return any(_under(lexical, root) for root in (*self._given, *self.roots))

        if inside(Path(path)):
            return "symlink", f"a symlink leads out of the allowed roots (to {str(real)!r})"
        parts = Path(path).parts
        if ".." in parts and inside(Path(*parts[: parts.index("..")])):
            return "dotdot", "'..' climbs out of the allowed roots"
        return "outside", "it is outside the allowed roots"
