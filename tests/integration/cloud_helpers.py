"""Shared by the tests that connect ``AzureCloud`` to the emulator: the Account that points at it.

The ``cloud`` fixture built from it is in this folder's conftest.py.
"""

from __future__ import annotations

from typing import Any

from tunekeeper.resources.specs import AccountSpec, AuthSpec

TEST_API_KEY = "test-key"


def account_for(emulator: Any, *, key_env: str = "TUNEKEEPER_TEST_KEY") -> AccountSpec:
    """An api-key Account on the emulator's loopback URL (both planes); the key is read from ``key_env``."""
    return AccountSpec(
        name="emulator", endpoint=emulator.url, management_endpoint=emulator.url,
        subscription_id=emulator.config.subscription_id, resource_group=emulator.config.resource_group,
        account_name=emulator.config.account_name, auth=AuthSpec(kind="apiKey", api_key_env=key_env),
    )
