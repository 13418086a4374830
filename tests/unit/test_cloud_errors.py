"""Error translation at the cloud boundary, table-driven, with real SDK exception objects.

The openai exceptions are built from ``httpx2.Response`` objects and the azure-core ones from
azure-core ``HttpResponse`` objects, exactly as the SDKs build them from the wire; no client is
mocked and no socket is opened.
"""

from __future__ import annotations

import json

import httpx2
import openai
import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.core.rest import HttpRequest
from azure.core.rest._http_response_impl import HttpResponseImpl
from azure.core.utils import case_insensitive_dict
from azure.mgmt.core.exceptions import ARMErrorFormat
from tunekeeper.cloud._arm import conflict_wait
from tunekeeper.cloud._errors import (
    HINT_401,
    HINT_403,
    HINT_QUOTA,
    is_request_conflict,
    retry_after_of,
    translate,
    translated,
)
from tunekeeper.errors import CloudError, NotFound, PermanentCloudError, TransientCloudError

SECRET = "s3cr3t-key-value"
DATA_URL = "http://127.0.0.1:9/openai/fine_tuning/jobs?api-version=2025-04-01-preview"
ARM_URL = "http://127.0.0.1:9/subscriptions/s/resourceGroups/g/providers/Microsoft.CognitiveServices/accounts/a"

_OPENAI_CLASSES: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    409: openai.ConflictError,
    429: openai.RateLimitError,
    500: openai.InternalServerError,
    503: openai.InternalServerError,
}


def openai_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> openai.APIStatusError:
    request = httpx2.Request("POST", DATA_URL, headers={"api-key": SECRET})
    body = {"error": {"code": code, "message": message}}
    response = httpx2.Response(status, headers=headers or {}, json=body, request=request)
    cls = _OPENAI_CLASSES.get(status, openai.APIStatusError)
    return cls(f"Error code: {status} - {message}", response=response, body=body["error"])


def azure_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None,
    cls: type[HttpResponseError] = HttpResponseError,
) -> HttpResponseError:
    response = HttpResponseImpl(
        request=HttpRequest("PUT", ARM_URL, headers={"Authorization": f"Bearer {SECRET}"}),
        internal_response=None,
        status_code=status,
        reason="error",
        headers=case_insensitive_dict(headers or {}),
        content_type="application/json",
        stream_download_generator=None,
    )
    response._content = json.dumps({"error": {"code": code, "message": message}}).encode()
    return cls(response=response, error_format=ARMErrorFormat)


@pytest.mark.parametrize(
    ("status", "code", "expected", "hint"),
    [
        (400, "invalidPayload", PermanentCloudError, "invalid"),
        (401, "unauthorized", PermanentCloudError, HINT_401),
        (403, "forbidden", PermanentCloudError, HINT_403),
        (404, "notFound", NotFound, None),
        (409, "conflict", PermanentCloudError, None),
        (429, "tooManyRequests", TransientCloudError, "later"),
        (500, "internalFailure", TransientCloudError, "later"),
        (503, "serviceUnavailable", TransientCloudError, "later"),
        (400, "quotaExceeded", PermanentCloudError, HINT_QUOTA),
    ],
)
def test_openai_status_errors_map_to_project_errors(
    status: int, code: str, expected: type[CloudError], hint: str | None,
) -> None:
    exc = openai_error(status, code, f"the {code} message", {"apim-request-id": "req-123"})
    error = translate(exc, action="Create fine-tuning job")
    assert type(error) is expected
    assert error.status_code == status
    assert error.code == code
    assert error.request_id == "req-123"
    assert (
        error.message
        == f"Create fine-tuning job failed: HTTP {status} {code}: the {code} message (request id req-123)"
    )
    if hint is None:
        assert error.hint is None or expected is TransientCloudError
    else:
        assert error.hint is not None and hint in error.hint


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "InvalidResourceProperties", PermanentCloudError),
        (401, "AuthenticationFailed", PermanentCloudError),
        (403, "AuthorizationFailed", PermanentCloudError),
        (404, "DeploymentNotFound", NotFound),
        (409, "RequestConflict", TransientCloudError),
        (409, "Conflict", PermanentCloudError),
        (429, "TooManyRequests", TransientCloudError),
        (502, "BadGateway", TransientCloudError),
        (400, "InsufficientQuota", PermanentCloudError),
    ],
)
def test_azure_status_errors_map_to_project_errors(
    status: int, code: str, expected: type[CloudError]
) -> None:
    exc = azure_error(status, code, "from ARM", {"x-ms-request-id": "arm-req-9"})
    error = translate(exc, action="Create deployment d1")
    assert type(error) is expected
    assert (error.status_code, error.code, error.request_id) == (status, code, "arm-req-9")
    assert f"HTTP {status} {code}: from ARM" in error.message
    if code == "InsufficientQuota":
        assert error.hint == HINT_QUOTA


def test_sdk_specific_azure_classes_are_translated_like_their_status() -> None:
    assert (
        type(translate(azure_error(404, "NotFound", "gone", cls=ResourceNotFoundError), action="x"))
        is NotFound
    )
    conflict = azure_error(
        409,
        "RequestConflict",
        "Another operation is being performed on the parent resource",
        {"Retry-After": "3"},
        cls=ResourceExistsError,
    )
    error = translate(conflict, action="x")
    assert isinstance(error, TransientCloudError)
    assert error.retry_after == 3.0


def test_retry_after_comes_from_the_headers_milliseconds_first() -> None:
    error = translate(
        openai_error(429, "tooManyRequests", "slow down", {"retry-after": "2", "retry-after-ms": "1500"}),
        action="x",
    )
    assert isinstance(error, TransientCloudError)
    assert error.retry_after == 1.5
    assert retry_after_of({"retry-after": "7"}) == 7.0
    assert retry_after_of({"x-ms-retry-after-ms": "250"}) == 0.25
    assert retry_after_of({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past
    assert retry_after_of({"retry-after": "soon"}) is None
    assert retry_after_of({}) is None


def test_connection_and_timeout_errors_are_transient() -> None:
    request = httpx2.Request("GET", DATA_URL)
    assert isinstance(
        translate(openai.APIConnectionError(request=request), action="List files"), TransientCloudError
    )
    timeout = translate(openai.APITimeoutError(request=request), action="List files")
    assert isinstance(timeout, TransientCloudError)
    assert "timed out" in timeout.message
    azure = translate(ServiceRequestError("Cannot connect to host 127.0.0.1:9"), action="List deployments")
    assert isinstance(azure, TransientCloudError)
    assert "127.0.0.1:9" in azure.message


def test_credential_failure_is_permanent_with_a_hint() -> None:
    error = translate(
        ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token"), action="List"
    )
    assert isinstance(error, PermanentCloudError)
    assert error.status_code is None
    assert error.hint is not None and "az login" in error.hint


def test_messages_never_carry_a_secret_even_when_the_service_echoes_it() -> None:
    exc = openai_error(401, "unauthorized", f"key {SECRET} is not valid")
    error = translate(exc, action="List files", redact=[SECRET])
    assert SECRET not in error.message
    assert "(sensitive)" in error.message


def test_translated_reraises_as_project_error_and_lets_others_through() -> None:
    with pytest.raises(NotFound) as caught, translated("Get file file-1"):
        raise openai_error(404, "notFound", "no such file")
    assert caught.value.__suppress_context__
    with pytest.raises(KeyError), translated("Get file file-1"):
        raise KeyError("not an SDK error")


def test_request_conflict_is_recognised_by_code_or_message() -> None:
    assert is_request_conflict(azure_error(409, "RequestConflict", "busy"))
    assert is_request_conflict(
        azure_error(409, "Conflict", "Another operation is being performed on the parent")
    )
    assert not is_request_conflict(azure_error(409, "Conflict", "name taken"))
    assert not is_request_conflict(azure_error(429, "RequestConflict", "busy"))


def testconflict_wait_prefers_retry_after_and_respects_the_deadline() -> None:
    busy = "Another operation is being performed on the parent resource"
    assert conflict_wait(azure_error(409, "RequestConflict", busy, {"Retry-After": "3"}), 0.5, 10.0) == 3.0
    assert conflict_wait(azure_error(409, "RequestConflict", busy), 0.5, 10.0) == 0.5
    assert conflict_wait(azure_error(409, "RequestConflict", busy, {"Retry-After": "30"}), 0.5, 10.0) is None
    assert conflict_wait(azure_error(409, "Conflict", "name taken"), 0.5, 10.0) is None
    assert conflict_wait(azure_error(500, "InternalServerError", "boom"), 0.5, 10.0) is None
