"""Shared fixtures: one real emulator server per test session, its state reset per test.

Tests drive it over HTTP through the official clients: ``openai.AzureOpenAI`` for the data
plane and ``azure.mgmt.cognitiveservices`` for ARM (with ``enforce_https`` relaxed for
loopback only). Time is moved with ``emulator.clock.advance``, never with ``sleep``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "azure"
EXAMPLES = REPO_ROOT / "manifests" / "examples"

DATAPLANE_API_VERSION = "2025-04-01-preview"
STABLE_API_VERSION = "2024-10-21"
TEST_API_KEY = "test-key"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Microsoft's published API documents; tests that need them skip cleanly when absent."""
    if not SHARED_REFERENCE.is_dir():
        pytest.skip("../shared/reference/azure is not present")
    return SHARED_REFERENCE


@pytest.fixture(scope="session")
def _emulator_server() -> Iterator[object]:
    from tunekeeper.emulator import Emulator

    emu = Emulator(api_key=TEST_API_KEY, speed=1000.0)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emulator(_emulator_server: object) -> Iterator[object]:
    """The running emulator with empty state and no fault rules."""
    emu = _emulator_server
    emu.reset()  # type: ignore[attr-defined]
    yield emu
    emu.reset()  # type: ignore[attr-defined]


@pytest.fixture
def openai_client(emulator: object) -> Iterator[object]:
    from openai import AzureOpenAI

    client = AzureOpenAI(
        azure_endpoint=emulator.url,  # type: ignore[attr-defined]
        api_key=TEST_API_KEY,
        api_version=DATAPLANE_API_VERSION,
        max_retries=0,
    )
    yield client
    client.close()


@pytest.fixture
def arm_client(emulator: object) -> Iterator[object]:
    from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient

    from tunekeeper.cloud.loopback import AllowHttpForLoopback, StaticTokenCredential

    client = CognitiveServicesManagementClient(
        credential=StaticTokenCredential(),
        subscription_id=emulator.config.subscription_id,  # type: ignore[attr-defined]
        base_url=emulator.url,  # type: ignore[attr-defined]
        per_call_policies=[AllowHttpForLoopback()],
        polling_interval=0,
    )
    yield client
    client.close()
