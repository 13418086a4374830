"""Fixtures of the integration tests that drive ``AzureCloud`` against the emulator.

``cloud`` is an ``AzureCloud`` connected with ``TEST_API_KEY`` to the per-test emulator, closed
after the test. A module that uses it defines ``cloud_settings`` (its shrunken delays).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from tunekeeper.cloud import AzureCloud, CloudSettings, connect

from .cloud_helpers import TEST_API_KEY, account_for


@pytest.fixture
async def cloud(emulator: Any, cloud_settings: CloudSettings) -> AsyncIterator[AzureCloud]:
    connected = await connect(account_for(emulator), api_key=TEST_API_KEY, settings=cloud_settings)
    try:
        yield connected
    finally:
        await connected.close()
