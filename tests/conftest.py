"""pytest fixtures shared by every test module."""

import os
import shutil
import tempfile
from collections.abc import AsyncIterator

import anyio
import pytest
from anyio.abc import TaskGroup

# Hosts the tests spawn keep their audit logs here, not in the user's data directory; removed
# when the run ends (pytest_unconfigure) unless the caller chose the folder.
_AUDIT_DIR = None if "BRIDGE_AUDIT_DIR" in os.environ else tempfile.mkdtemp(prefix="bridge-test-audit-")
if _AUDIT_DIR is not None:
    os.environ["BRIDGE_AUDIT_DIR"] = _AUDIT_DIR


def pytest_unconfigure(config: pytest.Config) -> None:
    if _AUDIT_DIR is not None:
        shutil.rmtree(_AUDIT_DIR, ignore_errors=True)


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
