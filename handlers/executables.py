"""Which executables a caller may run: an allowlist of names (looked up on PATH) or paths,
compared by resolved path (symlinks followed)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable


def allowed_paths(entries: Iterable[str]) -> set[str]:
    """The resolved paths of ``entries`` (``~`` expanded; an entry not found is left out)."""
    return {os.path.realpath(found) for entry in entries
            if (found := shutil.which(os.path.expanduser(entry))) is not None}


def resolve(command: str, allowed: set[str]) -> str | None:
    """The absolute path ``command`` runs (looked up on the host's PATH) if, symlinks followed,
    it is one of ``allowed``. The link itself is run: a venv's python or a multi-call binary
    behaves by the name it is started as."""
    found = shutil.which(command)
    if found is None or os.path.realpath(found) not in allowed:
        return None
    return os.path.abspath(found)
