"""System programs the real-part tests start (redis-server, chromium, Xvfb).

``require(binary)`` gives the program's path; when it is missing the test is skipped, or fails
under ``CI=true`` (CI installs them with ``scripts/system-packages.sh``).
"""

from __future__ import annotations

import os
import shutil

import pytest

INSTALL = "sudo bash scripts/system-packages.sh"


def require(binary: str) -> str:
    """The path of ``binary`` on PATH, else skip the test (fail it under CI)."""
    path = shutil.which(binary)
    if path is not None:
        return path
    reason = f"{binary} is not installed (install it with: {INSTALL})"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)
