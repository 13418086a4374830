"""Translation of SDK exceptions into ``tunekeeper.errors``: the one place it happens.

Called by ``cloud/_dataplane.py`` and ``cloud/_arm.py`` around every SDK call (through
``translated``). Both SDK families are handled here: ``openai`` (data plane) and ``azure.core``
(ARM, and azure-identity credential failures that surface through either client).

The mapping::

    404                                   -> NotFound
    429, 408, 5xx, timeouts, connections  -> TransientCloudError (retry_after from the headers)
    409 RequestConflict (busy account)    -> TransientCloudError
    400, 401, 403, 409, other 4xx         -> PermanentCloudError (status, Azure code, request id, hint)

Messages carry the action, the HTTP status, Azure's error code and message and the request id;
they never carry credentials (values passed as ``redact`` are masked as a last line of defence).
This module must not retry, sleep or log: the SDK policies and the callers do that.
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import time
from collections.abc import Iterator, Mapping, Sequence

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
        return TransientCloudError(
            _redact(f"{action} failed: could not reach the service ({exc.message})", redact),
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
            _redact(f"{action} failed: {_first_line(str(exc.message))}", redact), hint=HINT_CREDENTIAL,
        )
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
            text, retry_after=retry_after_of(headers), status_code=status, code=code,
            request_id=request_id, hint=HINT_TRANSIENT,
        )
    return PermanentCloudError(
        text, status_code=status, code=code, request_id=request_id, hint=hint_for(status, code),
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


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "(sensitive)")
    return text


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "unknown error"


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
