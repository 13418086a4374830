"""Translation of SDK exceptions into ``tunekeeper.errors``: the one place it happens.

Called by ``cloud/_dataplane.py`` and ``cloud/_arm.py`` around every SDK call (through
``translated``). Both SDK families are handled here: ``openai`` (data plane) and ``azure.core``
(ARM, and azure-identity credential failures that surface through either client).

The mapping::

    404                                   -> NotFound
    429, 408, 5xx, timeouts, dropped       -> TransientCloudError (retry_after from the headers)
    409 RequestConflict (busy account)    -> TransientCloudError
    400, 401, 403, 409, other 4xx, 3xx    -> PermanentCloudError (status, Azure code, request id, hint)
    cannot connect (DNS, refused, connect timeout)
                                          -> PermanentCloudError naming the host, with a hint per cause
                                             (the transports already retried the connection a few times)

Messages carry the action, the HTTP status, Azure's error code and message and the request id;
they never carry credentials (values passed as ``redact`` are masked as a last line of defence).
This module must not retry, sleep or log: the SDK policies and the callers do that.
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import math
import socket
import time
from collections.abc import Iterator, Mapping, Sequence

import aiohttp
import httpx2
import openai
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from tunekeeper.errors import CloudError, NotFound, PermanentCloudError, TransientCloudError

REQUEST_ID_HEADERS = ("apim-request-id", "x-ms-request-id", "x-request-id")
CONFLICT_CODES = frozenset({"requestconflict", "anotheroperationinprogress"})
QUOTA_CODES = frozenset({"insufficientquota", "quotaexceeded"})

HINT_401 = (
    "check the credential: the api key in the Account's apiKeyFromEnv variable, or the Entra ID "
    "identity (az login, workload identity) that DefaultAzureCredential picks up"
)
HINT_403 = (
    'the identity needs a role assignment on the account: "Cognitive Services OpenAI Contributor" '
    'for files and fine-tuning, "Cognitive Services Contributor" to manage deployments'
)
HINT_QUOTA = "lower the deployment capacity, or request more quota for this model and region"
HINT_TRANSIENT = "the service is busy or unreachable; run the command again later"
HINT_400 = "the service rejected the request as invalid; check the values the message names"
HINT_DNS = (
    "check the host name in the Account's endpoint (or managementEndpoint) for a typo; the DNS lookup failed"
)
HINT_REFUSED = (
    "nothing accepts connections there: is the service (or the emulator) running, and is the port right?"
)
HINT_CONNECT_TIMEOUT = (
    "the host did not answer: check network access to it (firewall, proxy, VPN), then run again"
)
HINT_REDIRECT = (
    "the endpoint answered with a redirect, which tunekeeper never follows; put the final URL "
    "(https://<resource>.openai.azure.com) in the Account"
)
HINT_CREDENTIAL = (
    "no Entra ID credential is available: run `az login`, configure workload identity, or set "
    "auth.apiKeyFromEnv on the Account"
)


@contextlib.contextmanager
def translated(action: str, *, redact: Sequence[str] = ()) -> Iterator[None]:
    """Run the body; re-raise any SDK exception as the matching ``CloudError``."""
    try:
        yield
    except (openai.OpenAIError, AzureError) as exc:
        raise translate(exc, action=action, redact=redact) from None


def translate(exc: BaseException, *, action: str, redact: Sequence[str] = ()) -> CloudError:
    """The ``CloudError`` for one SDK exception; ``action`` says what was being done."""
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, Mapping) else {}
        return from_status(
            action,
            status=exc.status_code,
            code=_str_or_none(body.get("code")) or exc.code,
            message=_str_or_none(body.get("message")) or exc.message,
            headers=exc.response.headers,
            redact=redact,
        )
    if isinstance(exc, openai.APITimeoutError):
        return TransientCloudError(f"{action} timed out", hint=HINT_TRANSIENT)
    if isinstance(exc, openai.APIConnectionError):
        url = exc.request.url
        unreachable = connect_failure(exc, action, url.host, url.port)
        if unreachable is not None:
            return unreachable
        return TransientCloudError(
            _redact(f"{action} failed: the connection to {url.host} broke ({_root_cause(exc)})", redact),
            hint=HINT_TRANSIENT,
        )
    if isinstance(exc, HttpResponseError) and exc.response is not None and exc.status_code is not None:
        error = exc.error
        return from_status(
            action,
            status=exc.status_code,
            code=_str_or_none(getattr(error, "code", None)),
            message=_str_or_none(getattr(error, "message", None)) or exc.reason or "",
            headers=headers_of(exc),
            redact=redact,
        )
    if isinstance(exc, ClientAuthenticationError):  # azure-identity: no token could be obtained
        return PermanentCloudError(
            _redact(f"{action} failed: {_first_line(str(exc.message))}", redact),
            hint=HINT_CREDENTIAL,
        )
    if isinstance(exc, ServiceRequestError):
        unreachable = connect_failure(exc, action, None, None)
        if unreachable is not None:
            return unreachable
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return TransientCloudError(
            _redact(
                f"{action} failed: could not reach the service ({_first_line(str(exc.message))})", redact
            ),
            hint=HINT_TRANSIENT,
        )
    return PermanentCloudError(_redact(f"{action} failed: {_first_line(str(exc))}", redact))


def from_status(
    action: str,
    *,
    status: int,
    code: str | None,
    message: str,
    headers: Mapping[str, str],
    redact: Sequence[str] = (),
) -> CloudError:
    """The ``CloudError`` for an HTTP error answer (also used for failed long-running operations)."""
    request_id = request_id_of(headers)
    if 300 <= status < 400:
        where = headers.get("location") or headers.get("Location") or "another URL"
        return PermanentCloudError(
            _redact(f"{action} failed: HTTP {status}: the endpoint redirects to {where}", redact),
            status_code=status,
            code=code,
            request_id=request_id,
            hint=HINT_REDIRECT,
        )
    text = f"{action} failed: HTTP {status}"
    if code:
        text += f" {code}"
    if message:
        text += f": {message}"
    if request_id:
        text += f" (request id {request_id})"
    text = _redact(text, redact)
    lowered = (code or "").lower()
    if status == 404:
        return NotFound(text, status_code=status, code=code, request_id=request_id)
    if status in (408, 429) or status >= 500 or (status == 409 and lowered in CONFLICT_CODES):
        return TransientCloudError(
            text,
            retry_after=retry_after_of(headers),
            status_code=status,
            code=code,
            request_id=request_id,
            hint=HINT_TRANSIENT,
        )
    return PermanentCloudError(
        text,
        status_code=status,
        code=code,
        request_id=request_id,
        hint=hint_for(status, code),
    )


def hint_for(status: int, code: str | None) -> str | None:
    """What the user can do about a permanent failure."""
    if (code or "").lower() in QUOTA_CODES:
        return HINT_QUOTA
    if status == 401:
        return HINT_401
    if status == 403:
        return HINT_403
    if status in (400, 422):
        return HINT_400
    return None


def is_request_conflict(exc: BaseException) -> bool:
    """True for ARM's 409 "Another operation is being performed on the parent resource"."""
    if not isinstance(exc, HttpResponseError) or exc.status_code != 409:
        return False
    code = str(getattr(exc.error, "code", "") or "").lower()
    message = str(getattr(exc.error, "message", "") or exc.message or "").lower()
    return code in CONFLICT_CODES or "another operation" in message


def headers_of(exc: HttpResponseError) -> Mapping[str, str]:
    """The response headers of an azure-core error (case-insensitive), or none."""
    headers = getattr(exc.response, "headers", None)
    return headers if isinstance(headers, Mapping) else {}


def request_id_of(headers: Mapping[str, str]) -> str | None:
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def retry_after_of(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from retry-after-ms / x-ms-retry-after-ms / Retry-After (seconds or a date)."""
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        value = headers.get(name)
        if value:
            try:
                millis = float(value)
            except ValueError:
                continue
            if math.isfinite(millis) and millis >= 0:
                return millis / 1000.0
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        seconds = email.utils.mktime_tz(parsed) - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def connect_failure(exc: BaseException, action: str, host: str | None, port: int | None) -> CloudError | None:
    """The error for a connection that could not be made (DNS, refused, connect timeout), naming the
    host; None when the failure happened after connecting (a dropped answer: retrying may help)."""
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, aiohttp.ClientConnectorError):  # azure-core's transport knows the host
            host, port = host or cause.host, port or cause.port
    where = f"{host}:{port}" if host and port else (host or "the service")
    if any(isinstance(c, (socket.gaierror, aiohttp.ClientConnectorDNSError)) for c in causes):
        return PermanentCloudError(
            f"{action} failed: cannot resolve the host name {host or '(unknown)'}", hint=HINT_DNS
        )
    if any(
        isinstance(c, ConnectionRefusedError) or getattr(c, "errno", None) == errno.ECONNREFUSED
        for c in causes
    ):
        return PermanentCloudError(f"{action} failed: {where} refused the connection", hint=HINT_REFUSED)
    if any(isinstance(c, (httpx2.ConnectTimeout, aiohttp.ConnectionTimeoutError)) for c in causes):
        return PermanentCloudError(
            f"{action} failed: {where} did not accept a connection in time", hint=HINT_CONNECT_TIMEOUT
        )
    if any(isinstance(c, (httpx2.ConnectError, aiohttp.ClientConnectorError)) for c in causes):
        return PermanentCloudError(
            f"{action} failed: cannot connect to {where} ({_root_cause(exc)})", hint=HINT_REFUSED
        )
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, what caused it, and the members of any exception group on the way (bounded)."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending and len(seen) < 50:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        inner = getattr(current, "inner_exception", None)  # azure-core keeps the transport's error here
        for nxt in (current.__cause__, current.__context__, inner):
            if isinstance(nxt, BaseException):
                pending.append(nxt)


def _root_cause(exc: BaseException) -> str:
    last = exc
    for cause in _causes(exc):
        last = cause
    return _first_line(str(last)) if str(last).strip() else type(last).__name__


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "(sensitive)")
    return text


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "unknown error"


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
