"""pytest fixtures shared by every test module."""

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
