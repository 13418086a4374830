"""The project's error types: every failure a user can meet is one of these.

Raised by every layer, caught by the adapters (CLI, operator), which render them without a
traceback. SDK exceptions never cross the ``cloud/`` boundary: they are translated there.

::

    TunekeeperError
      ManifestError          bad YAML, schema or reference; carries .diagnostics (path, line, column)
      DatasetError           a training or validation file breaks the rules; carries .diagnostics
      PlanError
        StalePlan            the account changed after the plan was made
        ReplacementNotAllowed  a spec change needs a new training run and the resource forbids it
      CloudError             carries status_code, code and request_id
        TransientCloudError  429, 5xx, timeouts; carries .retry_after (seconds)
        PermanentCloudError  400, 401, 403, 409; the same request will fail again
          NotFound           404: ``get_`` on something that does not exist
"""

from __future__ import annotations

from collections.abc import Sequence

from tunekeeper.diagnostics import Diagnostic


class TunekeeperError(Exception):
    """Base of every error tunekeeper raises on purpose. ``hint`` says what to do about it."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ManifestError(TunekeeperError):
    """One or more manifests are invalid. All problems are carried, sorted by file and line."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(sorted(diagnostics))
        errors = [d for d in self.diagnostics if d.severity == "error"]
        first = errors[0] if errors else (self.diagnostics[0] if self.diagnostics else None)
        summary = first.render() if first else "invalid manifests"
        super().__init__(f"{len(errors)} error(s) in manifests; first: {summary}")


class DatasetError(TunekeeperError):
    """A dataset breaks the rules (carried as diagnostics, like ManifestError)."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(sorted(diagnostics))
        errors = [d for d in self.diagnostics if d.severity == "error"]
        first = errors[0] if errors else (self.diagnostics[0] if self.diagnostics else None)
        summary = first.render() if first else "invalid dataset"
        super().__init__(f"{len(errors)} error(s) in datasets; first: {summary}")


class PlanError(TunekeeperError):
    """A plan cannot be made or carried out as it stands."""


class StalePlan(PlanError):
    """The observed state changed after the plan was made; plan again."""


class ReplacementNotAllowed(PlanError):
    """A FineTuneJob spec change needs a new (paid) training run and the resource does not allow it."""


class CloudError(TunekeeperError):
    """A call to Azure (or the emulator) failed. Never carries credentials."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status_code = status_code
        self.code = code
        self.request_id = request_id


class TransientCloudError(CloudError):
    """Worth retrying later: throttling, server errors, timeouts, a busy parent resource."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class PermanentCloudError(CloudError):
    """The same request will fail again: fix the input, the credentials or the quota."""


class NotFound(PermanentCloudError):
    """The object asked for does not exist (``get_`` raises this; ``delete_`` never does)."""
