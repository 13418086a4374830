"""Loopback allowances: plain http and a static development token, for the emulator only.

The Azure management client refuses to send a bearer token over plain http. For endpoints on
the loopback interface (127.0.0.0/8, ::1, localhost) — where ``tunekeeper emulator`` listens —
a per-call policy relaxes that check, and a static token stands in for Entra ID. Any other
host keeps the SDK's protections: ``require_loopback`` raises before a request is built.
"""

from __future__ import annotations

import time
from typing import Any, Self

from azure.core.credentials import AccessToken
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy

from tunekeeper.netaddr import is_loopback_url

DEV_TOKEN = "tunekeeper-emulator-dev-token"


def require_loopback(url: str) -> None:
    if not is_loopback_url(url):
        raise ValueError(
            f"plain http and development tokens are allowed for loopback endpoints only, not {url!r}"
        )


class AllowHttpForLoopback(SansIOHTTPPolicy[Any, Any]):
    """Per-call policy: lets the bearer-token policy send over http, for loopback URLs only."""

    def on_request(self, request: PipelineRequest[Any]) -> None:
        if is_loopback_url(request.http_request.url):
            request.context["enforce_https"] = False


class StaticTokenCredential:
    """A TokenCredential (sync and async) that returns a fixed development token."""

    def __init__(self, token: str = DEV_TOKEN) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)

    def close(self) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class AsyncStaticTokenCredential(StaticTokenCredential):
    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:  # type: ignore[override]
        return AccessToken(self._token, int(time.time()) + 3600)

    async def close(self) -> None:  # type: ignore[override]
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None
