"""``AzureCloud``: the ``Cloud`` protocol on the official Azure OpenAI and ARM clients.

``connect(account)`` is how every caller (reconcile core, CLI, operator, tests) gets one. It
builds, for one ``AccountSpec``:

* ``openai.AsyncAzureOpenAI`` for the data plane (api-version ``2025-04-01-preview``, needed for
  checkpoints, pause and ``method``), over an httpx client whose request hook counts requests;
* ``CognitiveServicesManagementClient`` (aio) for ARM deployments, ``base_url`` =
  ``account.management_endpoint``, its default api-version, with a per-retry counting policy;
* credentials: Entra ID through ``DefaultAzureCredential`` (workload identity in clusters
  works through it) — a bearer-token provider for openai, the credential itself for ARM — or
  an api key from ``os.environ[account.auth.api_key_env]`` (an explicit ``api_key=`` wins).
  ARM always needs a bearer token: for loopback management endpoints (the emulator) a static
  development token is used, anywhere else ``DefaultAzureCredential``.

Plain http is accepted only for loopback endpoints; anything else is refused before a request is
built. Retries and Retry-After are the SDKs' own policies, configured by ``CloudSettings``.
Neither client follows a redirect (httpx ``follow_redirects=False``, azure-core
``permit_redirects=False``): an answer from another host is never used, and a 3xx becomes an
error that names where it pointed. A host that cannot be reached fails in seconds: connect
timeouts are short, and connection failures are retried by the transports a few times
(``connect_retries``) rather than by the throttling retry policy, which would spend minutes.
For a loopback management endpoint with an api key (``tunekeeper emulator --api-key``), the key
is ARM's bearer token, as that emulator requires.
Keys and tokens are never logged, printed or put in an error message.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx2
import openai
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.cognitiveservices.aio import CognitiveServicesManagementClient

from tunekeeper.cloud._arm import ArmDeployments
from tunekeeper.cloud._dataplane import DataPlane
from tunekeeper.cloud.base import (
    DeploymentRequest,
    JobRequest,
    ObservedCheckpoint,
    ObservedDeployment,
    ObservedEvent,
    ObservedFile,
    ObservedJob,
    ObservedModel,
    Operation,
    ProgressCallback,
)
from tunekeeper.cloud.loopback import AllowHttpForLoopback, AsyncStaticTokenCredential
from tunekeeper.errors import PermanentCloudError
from tunekeeper.netaddr import is_loopback_url
from tunekeeper.resources.specs import DEFAULT_MANAGEMENT_ENDPOINT, AccountSpec, Sku

log = logging.getLogger("tunekeeper.cloud")

DATAPLANE_API_VERSION = "2025-04-01-preview"
COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"


@dataclass(frozen=True, slots=True)
class CloudSettings:
    """Knobs of the clients; the defaults suit real Azure, tests shrink the delays."""

    api_version: str = DATAPLANE_API_VERSION
    max_retries: int = 6  # openai: retries of 408/409/429/5xx/connection errors, honouring Retry-After
    arm_retry_total: int = 6  # azure-core AsyncRetryPolicy: retry_total
    arm_retry_backoff_factor: float = 0.8  # azure-core default; delay = factor * 2**(n-1), from the 2nd retry
    polling_interval: float = 5.0  # ARM long-running operations, when the answer carries no Retry-After
    conflict_timeout: float = 600.0  # how long a 409 RequestConflict is waited out
    conflict_initial_delay: float = 2.0  # first wait when the 409 carries no Retry-After; doubles
    conflict_max_delay: float = 30.0
    timeout: float = 600.0  # seconds per data-plane request (uploads of large files included)
    connect_timeout: float = 5.0  # seconds to open a connection (both clients)
    connect_retries: int = 1  # retries of a connection that could not be made, by the transports
    page_size: int = 100  # `limit` for listing jobs, events and checkpoints (Azure's defaults: 20, 20, 10)
    files_page_size: int = 10_000  # `limit` for listing files (Azure's default and maximum)
    # Files above this size go in parts through /uploads, resumable across runs (cloud/_uploads.py);
    # 32 MiB parts stay under every published part limit, and a rerun resends at most one part's
    # worth of what already arrived.
    multipart_above: int = 64 << 20
    part_size: int = 32 << 20
    upload_records: Path | None = None  # where resumable uploads are recorded (None: not resumable)


class RequestCounter:
    """Counts HTTP requests sent by both clients, retries and polls included."""

    def __init__(self) -> None:
        self.count = 0

    async def on_httpx_request(self, request: httpx2.Request) -> None:
        self.count += 1


class CountRequests(SansIOHTTPPolicy[Any, Any]):
    """Per-retry azure-core policy: runs once for every attempt the retry policy makes."""

    def __init__(self, counter: RequestCounter) -> None:
        super().__init__()
        self._counter = counter

    def on_request(self, request: PipelineRequest[Any]) -> None:
        self._counter.count += 1


class FailFastConnect(httpx2.AsyncBaseTransport):
    """httpx's transport with its own connection retries, for openai's client.

    openai retries every transport failure like a 429, six times over ~20 s; a host that does not
    resolve or refuses connections should fail in seconds. httpx's transport retries connection
    failures (``retries``) itself; when they are spent, the failure is raised as openai's own
    ``APIConnectionError``, which openai passes on without retrying it again (its documented
    "propagate OpenAIErrors as-is"). Failures after connecting are untouched: openai retries them.
    """

    def __init__(self, *, retries: int) -> None:
        # openai's own connection limits: a client given its transport leaves these to the transport.
        self._inner = httpx2.AsyncHTTPTransport(retries=retries, limits=openai.DEFAULT_CONNECTION_LIMITS)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            return await self._inner.handle_async_request(request)
        except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
            raise openai.APIConnectionError(request=request) from exc

    async def aclose(self) -> None:
        await self._inner.aclose()


class AzureCloud:
    """One Azure OpenAI account (or the emulator): its data plane and its ARM deployments."""

    def __init__(
        self,
        account: AccountSpec,
        *,
        openai_client: openai.AsyncAzureOpenAI,
        arm_client: CognitiveServicesManagementClient,
        counter: RequestCounter,
        settings: CloudSettings,
        owned_credentials: Sequence[Any] = (),
        redact: Sequence[str] = (),
    ) -> None:
        self.account = account
        self.settings = settings
        self._openai = openai_client
        self._arm_client = arm_client
        self._counter = counter
        self._owned_credentials = tuple(owned_credentials)
        self._data = DataPlane(
            openai_client,
            page_size=settings.page_size,
            files_page_size=settings.files_page_size,
            redact=redact,
            multipart_above=settings.multipart_above,
            part_size=settings.part_size,
            upload_records=settings.upload_records,
        )
        self._arm = ArmDeployments(
            arm_client,
            resource_group=account.resource_group,
            account_name=account.account_name,
            conflict_timeout=settings.conflict_timeout,
            conflict_initial_delay=settings.conflict_initial_delay,
            conflict_max_delay=settings.conflict_max_delay,
            redact=redact,
        )

    @property
    def request_count(self) -> int:
        return self._counter.count

    # files
    async def list_files(self) -> list[ObservedFile]:
        return await self._data.list_files()

    async def get_file(self, file_id: str) -> ObservedFile:
        return await self._data.get_file(file_id)

    async def upload_file(
        self,
        path: Path,
        *,
        filename: str,
        purpose: str = "fine-tune",
        add_bom: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> ObservedFile:
        return await self._data.upload_file(
            path,
            filename=filename,
            purpose=purpose,
            add_bom=add_bom,
            on_progress=on_progress,
        )

    async def import_file(self, url: str, *, filename: str, purpose: str = "fine-tune") -> ObservedFile:
        return await self._data.import_file(url, filename=filename, purpose=purpose)

    async def download_file(self, file_id: str) -> bytes:
        return await self._data.download_file(file_id)

    async def delete_file(self, file_id: str) -> None:
        await self._data.delete_file(file_id)

    # fine-tuning jobs
    async def list_jobs(self) -> list[ObservedJob]:
        return await self._data.list_jobs()

    async def get_job(self, job_id: str) -> ObservedJob:
        return await self._data.get_job(job_id)

    async def create_job(self, request: JobRequest) -> ObservedJob:
        return await self._data.create_job(request)

    async def cancel_job(self, job_id: str) -> ObservedJob:
        return await self._data.cancel_job(job_id)

    async def delete_job(self, job_id: str) -> None:
        await self._data.delete_job(job_id)

    async def list_job_events(self, job_id: str, *, after: str | None = None) -> list[ObservedEvent]:
        return await self._data.list_job_events(job_id, after=after)

    async def list_checkpoints(self, job_id: str) -> list[ObservedCheckpoint]:
        return await self._data.list_checkpoints(job_id)

    # models
    async def list_models(self) -> list[ObservedModel]:
        return await self._data.list_models()

    # deployments (ARM)
    async def list_deployments(self) -> list[ObservedDeployment]:
        return await self._arm.list_deployments()

    async def get_deployment(self, name: str) -> ObservedDeployment:
        return await self._arm.get_deployment(name)

    async def begin_create_deployment(self, request: DeploymentRequest) -> Operation:
        return await self._arm.begin_create_deployment(request)

    async def begin_update_deployment(
        self,
        name: str,
        *,
        sku: Sku | None = None,
        capacity: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Operation:
        return await self._arm.begin_update_deployment(name, sku=sku, capacity=capacity, tags=tags)

    async def begin_delete_deployment(self, name: str) -> Operation:
        return await self._arm.begin_delete_deployment(name)

    # inference
    async def chat(self, deployment: str, messages: Sequence[Mapping[str, object]]) -> str:
        return await self._data.chat(deployment, messages)

    async def close(self) -> None:
        """Stop following ARM operations and close both clients and any credential made here."""
        await self._arm.close()
        await self._openai.close()
        await self._arm_client.close()
        for credential in self._owned_credentials:
            await credential.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def connect(
    account: AccountSpec,
    *,
    api_key: str | None = None,
    settings: CloudSettings | None = None,
) -> AzureCloud:
    """An ``AzureCloud`` for ``account``. No request is sent until the first method call.

    Raises ``PermanentCloudError`` for a plain-http endpoint that is not loopback, and for an
    api-key Account whose environment variable is unset (the message names the variable only).
    """
    settings = settings or CloudSettings()
    endpoint = _checked_endpoint(account, "endpoint", account.endpoint)
    management = _checked_endpoint(account, "managementEndpoint", account.management_endpoint)
    key = api_key if api_key is not None else _api_key_from_env(account)

    counter = RequestCounter()
    owned: list[Any] = []
    entra: AsyncTokenCredential | None = None

    def default_credential() -> AsyncTokenCredential:
        nonlocal entra
        if entra is None:
            from azure.identity.aio import DefaultAzureCredential

            entra = DefaultAzureCredential()
            owned.append(entra)
        return entra

    http_client = openai.DefaultAsyncHttpxClient(
        event_hooks={"request": [counter.on_httpx_request]},
        follow_redirects=False,
        transport=FailFastConnect(retries=settings.connect_retries),
    )
    openai_auth: dict[str, Any]
    if key is not None:
        openai_auth = {"api_key": key}
    elif is_loopback_url(endpoint):
        openai_auth = {"azure_ad_token_provider": _static_token_provider()}
    else:
        from azure.identity.aio import get_bearer_token_provider

        openai_auth = {
            "azure_ad_token_provider": get_bearer_token_provider(
                default_credential(), COGNITIVE_SERVICES_SCOPE
            )
        }
    openai_client = openai.AsyncAzureOpenAI(
        azure_endpoint=endpoint,
        api_version=settings.api_version,
        max_retries=settings.max_retries,
        timeout=httpx2.Timeout(settings.timeout, connect=settings.connect_timeout),
        http_client=http_client,
        **openai_auth,
    )

    arm_credential: AsyncTokenCredential
    arm_options: dict[str, Any] = {}
    if is_loopback_url(management):
        arm_credential = AsyncStaticTokenCredential(key) if key else AsyncStaticTokenCredential()
        arm_options["per_call_policies"] = [AllowHttpForLoopback()]
    else:
        arm_credential = default_credential()
        if management.rstrip("/") != DEFAULT_MANAGEMENT_ENDPOINT:
            arm_options["credential_scopes"] = [management.rstrip("/") + "/.default"]
    arm_client = CognitiveServicesManagementClient(
        credential=arm_credential,
        subscription_id=account.subscription_id,
        base_url=management,
        polling_interval=settings.polling_interval,
        retry_total=settings.arm_retry_total,
        retry_backoff_factor=settings.arm_retry_backoff_factor,
        per_retry_policies=[CountRequests(counter)],
        retry_connect=settings.connect_retries,
        connection_timeout=settings.connect_timeout,
        permit_redirects=False,
        **arm_options,
    )
    log.debug("Connected to account %s (%s)", account.name, endpoint)
    return AzureCloud(
        account,
        openai_client=openai_client,
        arm_client=arm_client,
        counter=counter,
        settings=settings,
        owned_credentials=owned,
        redact=(key,) if key else (),
    )


def _checked_endpoint(account: AccountSpec, field: str, url: str) -> str:
    """``url`` if it is https, or http on a loopback address; otherwise a clear refusal."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "https" or (scheme == "http" and is_loopback_url(url)):
        return url.rstrip("/")
    where = f"{account.source}: " if account.source.line else ""
    if scheme == "http":
        raise PermanentCloudError(
            f"{where}Account {account.name}: {field} {url} uses plain http, which is allowed only for "
            "loopback addresses (127.0.0.1, ::1, localhost)",
            hint="use the https:// endpoint of the Azure resource",
        )
    raise PermanentCloudError(
        f"{where}Account {account.name}: {field} {url!r} is not an http(s) URL",
        hint="write it like https://<resource>.openai.azure.com",
    )


def _api_key_from_env(account: AccountSpec) -> str | None:
    if account.auth.kind != "apiKey":
        return None
    variable = account.auth.api_key_env
    if not variable and account.auth.api_key_secret is not None:
        raise PermanentCloudError(
            f"Account {account.name}: auth.apiKeyFromSecret names the Kubernetes Secret "
            f"{account.auth.api_key_secret.name}, which only the operator can read",
            hint="for the CLI, use auth.apiKeyFromEnv (or Entra ID); keep apiKeyFromSecret for the cluster",
        )
    if not variable:
        raise PermanentCloudError(
            f"Account {account.name}: auth is apiKey but no environment variable is named",
            hint="set auth.apiKeyFromEnv to the name of the variable that holds the key",
        )
    value = os.environ.get(variable)
    if not value:
        raise PermanentCloudError(
            f"Account {account.name}: the environment variable {variable} (auth.apiKeyFromEnv) is not set",
            hint=f"export {variable} with the resource's key, or use Entra ID auth",
        )
    return value


def _static_token_provider() -> Any:
    """Bearer tokens for a loopback data plane with Entra auth (the emulator accepts any token)."""
    credential = AsyncStaticTokenCredential()

    async def token() -> str:
        return (await credential.get_token(COGNITIVE_SERVICES_SCOPE)).token

    return token
