"""Shared fixtures: one real emulator server per test session, its state reset per test.

Tests drive it over HTTP through the official clients: ``openai.AzureOpenAI`` for the data
plane and ``azure.mgmt.cognitiveservices`` for ARM (with ``enforce_https`` relaxed for
loopback only). Time is moved with ``emulator.clock.advance``, never with ``sleep``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# Microsoft's published API documents: next to the repository, or where TUNEKEEPER_AZURE_REFERENCE says.
SHARED_REFERENCE = Path(
    os.environ.get("TUNEKEEPER_AZURE_REFERENCE") or REPO_ROOT.parent / "shared" / "reference" / "azure"
)
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


# -- data-plane responses checked against Microsoft's published (swagger 2.0) documents ----------
class SwaggerContract:
    """Validates data-plane response bodies against one api-version's ``azureopenai.json``.

    Swagger 2.0 is not JSON Schema, so definitions are translated: ``x-*``, ``readOnly``,
    ``discriminator`` and formats (``unixtime``, ``int32``...) are dropped; ``type: file`` accepts
    anything; ``x-nullable`` adds ``null``; and a property that is not ``required`` may be ``null``
    (Azure returns ``null`` for unset optional fields, and AutoRest clients accept that). Enums are
    kept strict. A path+method+status the document does not describe is reported as such.
    """

    def __init__(self, spec_path: Path) -> None:
        import json
        import re

        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        self.version = spec_path.parent.name
        self._definitions = {name: self._translate(d) for name, d in spec["definitions"].items()}
        self._operations: list[tuple[re.Pattern[str], str, dict[str, object]]] = []
        templates = sorted(spec["paths"], key=lambda t: (t.count("{"), t))
        for template in templates:
            pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")
            for method, operation in spec["paths"][template].items():
                if isinstance(operation, dict) and "responses" in operation:
                    self._operations.append((pattern, method.upper(), operation["responses"]))

    def _translate(self, node: object) -> object:
        if isinstance(node, list):
            return [self._translate(item) for item in node]
        if not isinstance(node, dict):
            return node
        if node.get("type") == "file":
            return {}
        out: dict[str, object] = {}
        for key, value in node.items():
            if key.startswith("x-") or key in ("readOnly", "discriminator", "format", "title", "description",
                                                "example", "externalDocs", "xml", "default"):
                continue
            if key == "$ref":
                out[key] = str(value)
            elif key == "properties":
                required = set(node.get("required", ()))
                out[key] = {
                    name: self._translate(prop) if name in required
                    else {"anyOf": [{"type": "null"}, self._translate(prop)]}
                    for name, prop in value.items()
                }
            else:
                out[key] = self._translate(value)
        if node.get("x-nullable") and "type" in out:
            out = {"anyOf": [{"type": "null"}, out]}
        return out

    def schema_for(self, method: str, path: str, status: int) -> object | None:
        """The translated response schema, or None when the document describes no such response."""
        relative = path.removeprefix("/openai")
        for pattern, op_method, responses in self._operations:
            if op_method == method.upper() and pattern.match(relative):
                response = responses.get(str(status)) or responses.get("default")
                if not isinstance(response, dict):
                    return None
                return self._translate(response.get("schema", {}))
        return None

    def errors(self, method: str, path: str, status: int, body: object) -> list[str]:
        import jsonschema

        schema = self.schema_for(method, path, status)
        if schema is None:
            return [f"{method} {path} -> {status}: not described by {self.version}"]
        root = {"definitions": self._definitions, **(schema if isinstance(schema, dict) else {})}
        validator = jsonschema.Draft4Validator(root)
        return [
            f"{method} {path} -> {status} ({self.version}): "
            f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
            for e in validator.iter_errors(body)
        ]


@pytest.fixture(scope="session")
def dataplane_contracts() -> dict[str, SwaggerContract]:
    """api-version -> contract; empty when ../shared/reference/azure is absent."""
    folder = SHARED_REFERENCE / "dataplane"
    if not folder.is_dir():
        return {}
    return {p.parent.name: SwaggerContract(p) for p in sorted(folder.glob("*/azureopenai.json"))}


@pytest.fixture
def checked_openai_client(
    emulator: object, dataplane_contracts: dict[str, SwaggerContract]
) -> Iterator[object]:
    """An AzureOpenAI client whose every JSON response is validated against the published spec.

    Violations are collected by an httpx response hook and fail the test at teardown. Gateway
    answers given before the service runs (401, unknown api-version, 404 for a path the version
    does not have) and the inference paths
    (``/deployments/...``, not part of the authoring document) are not checked.
    """
    import json

    import httpx2 as httpx  # the HTTP library this openai release is built on
    from openai import AzureOpenAI

    problems: list[str] = []

    def check(response: httpx.Response) -> None:
        request = response.request
        version = request.url.params.get("api-version", "")
        contract = dataplane_contracts.get(version)
        if contract is None or response.status_code == 401 or "/deployments/" in request.url.path:
            return
        if response.status_code == 404 and contract.schema_for(request.method, request.url.path, 404) is None:
            return  # a path this api-version does not have: the gateway's "Resource not found"
        response.read()
        if response.status_code == 204 or not response.headers.get("content-type", "").startswith(
            "application/json"
        ):
            return
        problems.extend(contract.errors(request.method, request.url.path, response.status_code,
                                        json.loads(response.content)))

    http_client = httpx.Client(event_hooks={"response": [check]})
    client = AzureOpenAI(
        azure_endpoint=emulator.url,  # type: ignore[attr-defined]
        api_key=TEST_API_KEY,
        api_version=DATAPLANE_API_VERSION,
        max_retries=0,
        http_client=http_client,
    )
    yield client
    client.close()
    assert not problems, "responses that break the published contract:\n" + "\n".join(problems)
