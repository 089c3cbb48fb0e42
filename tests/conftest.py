"""pytest fixtures shared by every test module."""

import os
import tempfile
from collections.abc import AsyncIterator

import anyio
import pytest
from anyio.abc import TaskGroup

# Hosts the tests spawn keep their audit logs here, not in the user's data directory.
os.environ.setdefault("BRIDGE_AUDIT_DIR", tempfile.mkdtemp(prefix="bridge-test-audit-"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def tasks() -> AsyncIterator[TaskGroup]:
    """A task group for what a plugin's lifespan would own (a writer, a sweeper), in tests that
    build the pieces without a host; cancelled at the end of the test."""
    async with anyio.create_task_group() as group:
        yield group
        group.cancel_scope.cancel()
