"""Error answers shaped the way Azure shapes them, for both planes of the emulator.

Route handlers raise ``DataPlaneError`` (``/openai/...``) or ``ArmError`` (``/subscriptions/...``);
the outermost middleware in app.py turns them into JSON answers:

- data plane: ``{"error": {"code", "message", "target"?, "param"?, "details"?}}`` with the
  spec's ``ErrorCode`` values (``invalidPayload``, ``notFound``, ``conflict``, ...) where the
  published spec defines one, and Azure's observed gateway answers elsewhere (``"404"`` /
  "Resource not found" for a missing api-version, ``"401"`` for a bad key);
- ARM: the common-types ``ErrorResponse`` ``{"error": {"code", "message", "target"?, "details"?}}``
  with ARM's PascalCase codes (``ResourceNotFound``, ``RequestConflict``, ...).

This module only builds answers; it decides nothing about when an error happens.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web


class EmulatorHttpError(Exception):
    """An error answer a handler wants to send; rendered by app.py's middleware."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.target is not None:
            error["target"] = self.target
        return {"error": error}

    def response(self) -> web.Response:
        return web.Response(
            status=self.status,
            body=orjson.dumps(self.body()),
            content_type="application/json",
            headers=self.headers,
        )


class DataPlaneError(EmulatorHttpError):
    """An Azure OpenAI data-plane error (``ErrorResponse`` of the authoring spec)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, code, message, target=target, headers=headers)
        self.param = param

    def body(self) -> dict[str, object]:
        body = super().body()
        if self.param is not None:
            error = body["error"]
            assert isinstance(error, dict)
            error["param"] = self.param
        return body


class ArmError(EmulatorHttpError):
    """An Azure Resource Manager error (common-types ``ErrorResponse``)."""


# -- the data-plane errors more than one handler raises ---------------------------------------
def invalid_payload(message: str, *, param: str | None = None) -> DataPlaneError:
    return DataPlaneError(400, "invalidPayload", message, param=param, target=param)


def not_found(kind: str, ident: str) -> DataPlaneError:
    return DataPlaneError(404, "notFound", f"{kind} with id '{ident}' not found.", target=ident)


def unexpected_state(message: str) -> DataPlaneError:
    return DataPlaneError(409, "unexpectedEntityState", message)


def conflict(message: str) -> DataPlaneError:
    return DataPlaneError(409, "conflict", message)


# Azure's API gateway answers these before any service code runs; the shape is what users see.
def resource_not_found() -> DataPlaneError:
    return DataPlaneError(404, "404", "Resource not found")


def unsupported_api_version() -> DataPlaneError:
    # Azure's exact words; the served versions are in docs/emulator.md.
    return DataPlaneError(400, "BadRequest", "API version not supported")


def dataplane_unauthorized() -> DataPlaneError:
    return DataPlaneError(
        401,
        "401",
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
        "key for an active subscription and use a correct regional API endpoint for your resource.",
    )


def arm_unauthorized(missing: bool) -> ArmError:
    if missing:
        return ArmError(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
            headers={
                "WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common", '
                'error="invalid_token", error_description="The authentication failed '
                "because of missing 'Authorization' header.\""
            },
        )
    return ArmError(
        401,
        "InvalidAuthenticationToken",
        "The access token is invalid.",
        headers={
            "WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/common", '
            'error="invalid_token", error_description="The access token is invalid."'
        },
    )


def arm_route_not_found(path: str) -> ArmError:
    return ArmError(404, "InvalidResourceType", f"The resource type could not be found for path '{path}'.")


def internal_failure(plane_is_arm: bool) -> EmulatorHttpError:
    if plane_is_arm:
        return ArmError(500, "InternalServerError", "An internal error occurred in the emulator.")
    return DataPlaneError(500, "internalFailure", "Internal error. Please retry.")


def request_too_large(limit: int, plane_is_arm: bool) -> EmulatorHttpError:
    message = f"The request body is larger than this operation accepts ({limit} bytes)."
    if plane_is_arm:
        return ArmError(413, "RequestEntityTooLarge", message)
    return DataPlaneError(413, "invalidPayload", message)


def request_timeout(seconds: float, plane_is_arm: bool) -> EmulatorHttpError:
    message = f"The request was not received and answered within {seconds:g} seconds."
    if plane_is_arm:
        return ArmError(408, "RequestTimeout", message)
    return DataPlaneError(408, "timeout", message)
