"""Fault injection for the emulator: throttling, server errors, slow answers, dropped connections.

Users and tests declare rules ("POST /openai/fine_tuning/jobs -> 429 twice"); the aiohttp
middleware ``faults_middleware`` consults them before any handler runs. Rules come from a
YAML/JSON file at start (``Faults.load`` / ``Faults.extend_from``, the ``--faults FILE`` flag),
from Python (``emulator.faults.add(...)``) or over HTTP at run time (``/_emulator/faults``, see
admin.py). The admin paths themselves are never faulted, so a rule can always be removed.

Matching: a rule's pattern is ``"METHOD /path/glob"`` or just ``"/path/glob"`` (any method);
the method may be ``*``. The path glob is matched with ``fnmatch`` (case-sensitive) against the
request path without its query string. Rules are tried in the order they were added; the first
rule that matches *and* fires (its probability roll succeeds) decides the request: it sleeps
``latency`` seconds, then either drops the connection, answers with ``status``, or (neither
set) lets the request through, slowed. A rule with ``times=N`` expires after firing N times.

Probability rolls come from a ``random.Random`` per rule, seeded from the rule's ``seed`` (by
default a hash of its pattern and position), so a test run is repeatable.

Error bodies follow the plane the path belongs to: ARM (``/subscriptions/...``) gets
``{"error": {"code": "TooManyRequests", ...}}``; the data plane gets its lower-camel codes
(``tooManyRequests``, ``internalFailure``, ``serviceUnavailable``). 429 and 503 carry
``Retry-After`` (seconds) and ``retry-after-ms``, which both the openai and azure-core retry
policies honour.

This module must not know any route's logic; it only short-circuits requests.
"""

from __future__ import annotations

import asyncio
import builtins
import fnmatch
import json
import math
import random
import threading
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from tunekeeper.diagnostics import Diagnostic
from tunekeeper.errors import ManifestError

ADMIN_PREFIX = "/_emulator"
METHODS = frozenset({"*", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
DEFAULT_RETRY_AFTER = 1.0  # seconds, for a 429/503 rule that names none

# (ARM code, data-plane code, message) per status; the data-plane codes are the spec's ErrorCode enum.
_ERRORS: Mapping[int, tuple[str, str, str]] = {
    400: ("BadRequest", "invalidPayload", "The request is invalid (injected fault)."),
    401: ("AuthenticationFailed", "unauthorized", "Authentication failed (injected fault)."),
    403: ("AuthorizationFailed", "forbidden", "The client is not authorized (injected fault)."),
    404: ("ResourceNotFound", "notFound", "The resource was not found (injected fault)."),
    409: ("Conflict", "conflict", "The request conflicts with the current state (injected fault)."),
    429: ("TooManyRequests", "tooManyRequests", "Too many requests. Please retry later (injected fault)."),
    500: ("InternalServerError", "internalFailure", "An internal error occurred (injected fault)."),
    502: ("BadGateway", "internalFailure", "Bad gateway (injected fault)."),
    503: (
        "ServiceUnavailable",
        "serviceUnavailable",
        "The service is temporarily unavailable (injected fault).",
    ),
    504: ("GatewayTimeout", "internalFailure", "The gateway timed out (injected fault)."),
}

# Bounds on a rule, so that no rule can hold a connection (or a shutdown) for long: the SDKs
# time out well before a minute, and Azure's own Retry-After values are seconds, not hours.
MAX_LATENCY_SECONDS = 60.0
MAX_RETRY_AFTER_SECONDS = 3600.0
MAX_RULES = 1000


@dataclass(slots=True)
class FaultRule:
    """One rule. Mutable only in ``remaining`` (and its RNG), always under ``Faults``' lock."""

    id: str
    method: str  # "*" or an HTTP method, upper case
    path: str  # fnmatch glob on the request path
    status: int | None
    probability: float
    retry_after: float | None
    latency: float
    drop: bool
    times: int | None  # as given; None: forever
    seed: int
    remaining: int | None = None
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    @property
    def pattern(self) -> str:
        return f"{self.method} {self.path}"

    def matches(self, method: str, path: str) -> bool:
        return (self.method == "*" or self.method == method.upper()) and fnmatch.fnmatchcase(path, self.path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pattern": self.pattern,
            "status": self.status,
            "probability": self.probability,
            "retry_after": self.retry_after,
            "latency": self.latency,
            "drop": self.drop,
            "times": self.times,
            "remaining": self.remaining,
            "fired": self.fired,
            "seed": self.seed,
        }


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What the middleware does for one request."""

    rule_id: str
    latency: float
    status: int | None
    retry_after: float | None
    drop: bool


def parse_pattern(pattern: str) -> tuple[str, str]:
    """``"POST /openai/files"`` -> ("POST", "/openai/files"); ``"/openai/*"`` -> ("*", "/openai/*")."""
    text = pattern.strip()
    if not text:
        raise ValueError("pattern is empty; write e.g. 'POST /openai/fine_tuning/jobs' or '* /openai/*'")
    parts = text.split(None, 1)
    if len(parts) == 2:
        method, path = parts[0].upper(), parts[1].strip()
    elif parts[0].startswith("/") or parts[0] == "*":
        method, path = "*", parts[0]
    else:
        raise ValueError(f"pattern {pattern!r} has no path; write e.g. '{parts[0].upper()} /openai/*'")
    if method not in METHODS:
        raise ValueError(
            f"pattern {pattern!r}: unknown method {method!r}; use one of {', '.join(sorted(METHODS))}"
        )
    if not path.startswith(("/", "*")):
        raise ValueError(f"pattern {pattern!r}: the path must start with '/' (or be a glob such as '*')")
    return method, path


class Faults:
    """The fault rules of one emulator. Thread-safe: tests add rules while the server runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._counter = 0

    # -- building rules -------------------------------------------------------------------
    def add(
        self,
        pattern: str,
        status: int | None = None,
        probability: float = 1.0,
        retry_after: float | None = None,
        latency: float = 0.0,
        drop: bool = False,
        times: int | None = None,
        seed: int | None = None,
    ) -> str:
        """Add a rule and return its id (``fault-N``). Raises ValueError on a bad value."""
        method, path = parse_pattern(pattern)
        if status is not None and not (400 <= int(status) <= 599):
            raise ValueError(f"status must be an HTTP error status 400..599, got {status}")
        if not (0.0 <= float(probability) <= 1.0):
            raise ValueError(f"probability must be between 0 and 1, got {probability}")
        if retry_after is not None and not 0 <= float(retry_after) <= MAX_RETRY_AFTER_SECONDS:
            raise ValueError(
                f"retry_after must be from 0 to {MAX_RETRY_AFTER_SECONDS:g} seconds, got {retry_after}"
            )
        if not 0 <= float(latency) <= MAX_LATENCY_SECONDS:
            raise ValueError(f"latency must be from 0 to {MAX_LATENCY_SECONDS:g} seconds, got {latency}")
        if times is not None and int(times) < 1:
            raise ValueError(f"times must be >= 1 (omit it for a rule that never expires), got {times}")
        if status is not None and drop:
            raise ValueError("a rule either answers with a status or drops the connection, not both")
        with self._lock:
            if len(self._rules) >= MAX_RULES:
                raise ValueError(f"at most {MAX_RULES} fault rules at once; remove some first")
            self._counter += 1
            rule_id = f"fault-{self._counter}"
            rule_seed = (
                int(seed) if seed is not None else zlib.crc32(f"{self._counter}:{method} {path}".encode())
            )
            rule = FaultRule(
                id=rule_id,
                method=method,
                path=path,
                status=None if status is None else int(status),
                probability=float(probability),
                retry_after=None if retry_after is None else float(retry_after),
                latency=float(latency),
                drop=bool(drop),
                times=None if times is None else int(times),
                seed=rule_seed,
                remaining=None if times is None else int(times),
                _rng=random.Random(rule_seed),
            )
            self._rules.append(rule)
        return rule_id

    def add_dict(self, spec: Mapping[str, Any]) -> str:
        """Add a rule from its JSON/YAML form (the admin endpoint and rule files use this)."""
        unknown = set(spec) - _RULE_FIELDS
        if unknown:
            raise ValueError(
                f"unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_RULE_FIELDS))}"
            )
        if "pattern" not in spec:
            raise ValueError("missing field 'pattern' (e.g. 'POST /openai/fine_tuning/jobs')")
        pattern = spec["pattern"]
        if not isinstance(pattern, str):
            raise ValueError("'pattern' must be a string such as 'POST /openai/fine_tuning/jobs'")  # noqa: TRY004 one error type for bad rules
        kwargs: dict[str, Any] = {}
        for name, kind in (("status", int), ("times", int), ("seed", int)):
            if spec.get(name) is not None:
                kwargs[name] = _typed(spec, name, kind)
        for name in ("probability", "retry_after", "latency"):
            if spec.get(name) is not None:
                kwargs[name] = _typed(spec, name, float)
        if spec.get("drop") is not None:
            if not isinstance(spec["drop"], bool):
                raise ValueError("'drop' must be true or false")
            kwargs["drop"] = spec["drop"]
        return self.add(pattern, **kwargs)

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def list(self) -> builtins.list[dict[str, Any]]:
        with self._lock:
            return [r.to_dict() for r in self._rules]

    # -- files ----------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> Faults:
        """A new rule set from a YAML or JSON file (see ``extend_from`` for the format)."""
        faults = cls()
        faults.extend_from(path)
        return faults

    def extend_from(self, path: Path) -> builtins.list[str]:
        """Add every rule of a file; all-or-nothing. Raises ManifestError naming file, line and field.

        The file holds a list of rules, or a mapping with a ``faults:`` list::

            faults:
              - pattern: POST /openai/fine_tuning/jobs
                status: 429
                retry_after: 2
                times: 3
              - {pattern: "GET /subscriptions/*", latency: 0.5, probability: 0.2}
        """
        display = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise ManifestError(
                [
                    Diagnostic(
                        display,
                        0,
                        message=f"cannot read the faults file: {exc.strerror}",
                        hint="check the path given to --faults",
                    )
                ]
            ) from None
        items, lines = _parse_rule_file(text, display)
        staged = Faults()
        problems: list[Diagnostic] = []
        for index, item in enumerate(items):
            where = f"faults[{index}]"
            if not isinstance(item, Mapping):
                problems.append(
                    Diagnostic(
                        display,
                        lines[index],
                        message=f"{where} must be a mapping",
                        field_path=where,
                        hint="write e.g. {pattern: 'POST /openai/files', status: 500}",
                    )
                )
                continue
            try:
                staged.add_dict(item)
            except ValueError as exc:
                problems.append(
                    Diagnostic(
                        display,
                        lines[index],
                        message=f"{where}: {exc}",
                        field_path=where,
                        hint="fields: pattern, status, probability, retry_after, latency, drop, times, seed",
                    )
                )
        if problems:
            raise ManifestError(problems)
        ids = [self.add_dict(item) for item in items]
        return ids

    # -- deciding -------------------------------------------------------------------------
    def decide(self, method: str, path: str) -> FaultDecision | None:
        """The fault for this request, if any; consumes one use of a ``times`` rule."""
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            return None
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                if rule.probability < 1.0 and rule._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                return FaultDecision(rule.id, rule.latency, rule.status, rule.retry_after, rule.drop)
        return None


_RULE_FIELDS = frozenset(
    {"pattern", "status", "probability", "retry_after", "latency", "drop", "times", "seed"}
)


def _typed(spec: Mapping[str, Any], name: str, kind: type) -> Any:
    value = spec[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"'{name}' must be a number, got {value!r}")  # noqa: TRY004 one error type for bad rules
    if kind is int and float(value) != int(value):
        raise ValueError(f"'{name}' must be a whole number, got {value!r}")
    return kind(value)


def _parse_rule_file(text: str, display: str) -> tuple[list[Any], list[int]]:
    """The rule items of a faults file and the 1-based line each starts on."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise ManifestError(
            [
                Diagnostic(
                    display,
                    line,
                    message=f"not valid YAML/JSON: {getattr(exc, 'problem', exc)}",
                    hint="a faults file is a YAML or JSON list of rules",
                )
            ]
        ) from None
    seq_node = node
    if isinstance(data, Mapping):
        if set(data) != {"faults"} or not isinstance(data["faults"], list):
            raise ManifestError(
                [
                    Diagnostic(
                        display,
                        1,
                        message="expected a list of rules or a mapping with only 'faults:'",
                        field_path="faults",
                        hint="write 'faults:' followed by a list of rules",
                    )
                ]
            )
        seq_node = node.value[0][1] if isinstance(node, yaml.MappingNode) else None
        data = data["faults"]
    elif data is None:
        return [], []
    elif not isinstance(data, list):
        raise ManifestError(
            [
                Diagnostic(
                    display,
                    1,
                    message="expected a list of fault rules",
                    hint="write 'faults:' followed by a list of rules",
                )
            ]
        )
    lines = [0] * len(data)
    if isinstance(seq_node, yaml.SequenceNode):
        lines = [child.start_mark.line + 1 for child in seq_node.value]
    return list(data), lines


# -- the middleware -----------------------------------------------------------------------
def fault_response(status: int, path: str, retry_after: float | None) -> web.Response:
    """The error answer for an injected ``status``, shaped like the plane ``path`` belongs to."""
    arm_code, data_code, message = _ERRORS.get(
        status, ("InternalServerError", "internalFailure", f"Injected fault (HTTP {status}).")
    )
    arm = path.lower().startswith("/subscriptions/")
    body = {"error": {"code": arm_code if arm else data_code, "message": message}}
    headers: dict[str, str] = {}
    if status in (429, 503) and retry_after is None:
        retry_after = DEFAULT_RETRY_AFTER
    if retry_after is not None:
        # Retry-After is whole seconds by RFC 9110; the -ms twin carries sub-second precision.
        headers["Retry-After"] = str(max(0, math.ceil(retry_after)))
        headers["retry-after-ms"] = str(round(retry_after * 1000))
        if arm:
            headers["x-ms-retry-after-ms"] = headers["retry-after-ms"]
    return web.Response(
        status=status, body=json.dumps(body), content_type="application/json", headers=headers
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Apply the first matching fault rule of ``request.app[CONTEXT].faults``, if any."""
    from tunekeeper.emulator.context import CONTEXT

    decision = request.app[CONTEXT].faults.decide(request.method, request.path)
    if decision is None:
        return await handler(request)
    if decision.latency > 0:
        await asyncio.sleep(decision.latency)
    if decision.drop:
        transport = request.transport
        if transport is not None:
            transport.abort()  # no status line, no body: the client sees the connection vanish
        # aiohttp discards what is written to an aborted transport; this response never leaves.
        return web.Response(status=499, reason="Dropped by fault rule")
    if decision.status is not None:
        return fault_response(decision.status, request.path, decision.retry_after)
    return await handler(request)
