"""pytest fixtures shared by every test module."""

import os
import tempfile

import pytest

# Hosts the tests spawn keep their audit logs here, not in the user's data directory.
os.environ.setdefault("BRIDGE_AUDIT_DIR", tempfile.mkdtemp(prefix="bridge-test-audit-"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
