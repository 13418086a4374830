"""Validate one manifest document against its kind's JSON Schema and explain each failure.

The loader calls :func:`check_document`. The schemas in ``schemas/`` are the contract (shipped
inside the package as ``tunekeeper/resources/schemas``); this module only turns jsonschema's
errors into diagnostics that name the file, line, column, field path and what to do, from one
rule table (``_SHAPES``) so a message names the value that was checked.

Must not: build specs, read data files, or know about other resources.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache
from importlib import resources as importlib_resources
from typing import TYPE_CHECKING, Any

from tunekeeper.diagnostics import Diagnostic, closest
from tunekeeper.resources._yaml import Document, NodePath
from tunekeeper.resources.specs import API_VERSION

if TYPE_CHECKING:
    from jsonschema import ValidationError
    from jsonschema.protocols import Validator

KINDS: Mapping[str, str] = {
    "Account": "account.schema.json",
    "FineTuneJob": "finetunejob.schema.json",
    "Deployment": "deployment.schema.json",
}

_NAME_RULE = (("must be a DNS-1123 name: at most 63 lower-case letters, digits and '-', "
              "starting and ending with a letter or digit"), "for example support-bot-v2")

# Generic field path (list indices as []) -> (what the value must be, hint), for pattern and length rules.
_SHAPES: Mapping[str, tuple[str, str]] = {
    "metadata.name": _NAME_RULE,
    "metadata.namespace": _NAME_RULE,
    "spec.account": _NAME_RULE,
    "spec.fromJob": _NAME_RULE,
    "spec.model.fromJob": _NAME_RULE,
    "spec.suffix": (
        "must be at most 40 characters of a-z A-Z 0-9 - _",
        "for example support-bot-v2; the suffix becomes part of the fine-tuned model's name",
    ),
    "spec.accountName": (
        "must be 2-64 characters of letters, digits, '_', '.' and '-', starting with a letter or digit",
        "the name of the Azure OpenAI resource, as in https://<name>.openai.azure.com",
    ),
    "spec.subscriptionId": (
        "must be a subscription id (a GUID)",
        "for example 00000000-0000-0000-0000-000000000000; see `az account show --query id`",
    ),
    "spec.resourceGroup": (
        "must be 1-90 letters, digits, '-', '_', '.', '(' or ')', not ending with '.'",
        "the resource group that holds the Azure OpenAI resource",
    ),
    "spec.auth.apiKeyFromEnv": (
        "must be an environment variable name (letters, digits and '_', not starting with a digit)",
        "for example AZURE_OPENAI_API_KEY; the key itself never goes in a manifest",
    ),
    "spec.endpoint": (
        "must be a URL like https://my-resource.openai.azure.com",
        "use the resource's endpoint from the Azure portal (Keys and Endpoint)",
    ),
    "spec.managementEndpoint": (
        "must be a URL like https://management.azure.com",
        "remove the field to use https://management.azure.com",
    ),
    "spec.baseModel": ("must be a model id like gpt-4.1-2025-04-14", "use the model name with its version"),
    "spec.model.name": ("must be a base model name like gpt-4.1", "the ARM model name, without the version"),
    "spec.trainingFile": (
        "must be a path relative to this manifest or an https URL",
        "for example data/training.jsonl",
    ),
    "spec.validationFile": (
        "must be a path relative to this manifest or an https URL",
        "for example data/validation.jsonl",
    ),
    "spec.gates.evalFile": ("must be a path relative to this manifest", "for example data/eval.jsonl"),
}

# (generic path of an object, field) -> (message, hint) when the field is not allowed there.
_FORBIDDEN: Mapping[tuple[str, str], tuple[str, str]] = {
    ("spec.method.hyperparameters", "beta"): (
        "spec.method.hyperparameters.beta is only for method type dpo",
        "remove beta, or set spec.method.type: dpo"),
    ("spec.method", "grader"): (
        "spec.method.grader is only for method type reinforcement",
        "remove the grader, or set spec.method.type: reinforcement"),
    ("spec.auth", "apiKeyFromEnv"): (
        "spec.auth.apiKeyFromEnv cannot be used with auth type entra",
        "remove `type: entra` (apiKeyFromEnv means api-key auth) or remove apiKeyFromEnv"),
    ("spec.auth", "apiKeyFromSecret"): (
        "spec.auth.apiKeyFromSecret cannot be used with auth type entra",
        "remove `type: entra` (apiKeyFromSecret means api-key auth) or remove apiKeyFromSecret"),
}

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping (key: value pairs)",
    "array": "a list",
    "null": "null",
}


@cache
def schema_text(kind: str) -> str:
    """The packaged schema of ``kind``, as text."""
    return (
        importlib_resources.files("tunekeeper.resources")
        .joinpath("schemas")
        .joinpath(KINDS[kind])
        .read_text("utf-8")
    )


@cache
def schema(kind: str) -> Mapping[str, Any]:
    loaded: Mapping[str, Any] = json.loads(schema_text(kind))
    return loaded


@cache
def _validator(kind: str) -> Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema(kind))


def field_path(path: Iterable[str | int]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _generic(path: Iterable[str | int]) -> str:
    return field_path("[]" if isinstance(p, int) else p for p in path).replace(".[]", "[]")


def show(value: object) -> str:
    """A value as a message shows it: short, and the way it was written where that matters."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null (empty)"
    if isinstance(value, float) and math.isinf(value):
        return "an infinite number"
    if isinstance(value, float) and math.isnan(value):
        return "not a number (NaN)"
    if isinstance(value, bytes):
        return "binary data"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return text


class _Explainer:
    def __init__(self, document: Document, display: str, contract: Mapping[str, Any] | None = None) -> None:
        self.doc = document
        self.display = display
        self.contract = contract
        self.out: list[Diagnostic] = []

    def add(
        self, path: NodePath, message: str, hint: str | None, *, key: bool = False, code: str = "TK-M100"
    ) -> None:
        if not hint:
            hint = self._described(path) or "see docs/resources.md for the fields of each kind"
        pos = self.doc.position(path, key=key)
        self.out.append(Diagnostic(self.display, pos.line, pos.column, "error", message, hint=hint,
                                   field_path=field_path(path) or None, code=code))

    def _described(self, path: NodePath) -> str | None:
        """The schema's description of the field at ``path``, as a fallback hint."""
        node: Any = self.contract
        for part in path:
            if not isinstance(node, Mapping):
                return None
            node = node.get("items") if isinstance(part, int) else node.get("properties", {}).get(part)
        if isinstance(node, Mapping) and isinstance(node.get("description"), str):
            return str(node["description"])
        return None

    def got(self, path: NodePath, value: object) -> str:
        text = self.doc.texts.get(path)
        if (text and value is not None and not isinstance(value, (str, bytes)) and text != str(value).lower()
                and text != str(value)):
            return f"{show(value)} (written {text})"
        return show(value)

    def explain(self, error: ValidationError) -> None:
        path: NodePath = tuple(error.absolute_path)
        name = field_path(path)
        generic = _generic(path)
        validator = error.validator
        value = error.instance
        sub: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
        if validator == "required":
            assert isinstance(value, dict)
            for missing in error.validator_value:
                if missing in value:
                    continue
                full = f"{name}.{missing}" if name else missing
                kind_note = f" for type {value['type']}" if isinstance(value.get("type"), str) else ""
                described = sub.get("properties", {}).get(missing, {}).get("description")
                self.add(path, f"{full} is required{kind_note}", described, key=True, code="TK-M101")
        elif validator == "additionalProperties":
            allowed = sorted(sub.get("properties", {}))
            for extra in sorted(set(value) - set(allowed)):
                close = closest(extra, allowed)
                full = f"{name}.{extra}" if name else extra
                hint = f"did you mean {close!r}?" if close else f"allowed here: {', '.join(allowed)}"
                self.add((*path, extra), f"unknown field {full}", hint, key=True, code="TK-M102")
        elif validator == "type":
            expected = error.validator_value
            want = _TYPE_NAMES.get(expected, expected) if isinstance(expected, str) else " or ".join(expected)
            hint = None
            written = self.doc.texts.get(path)
            if value is None:
                hint = "give it a value, or remove the line"
            elif expected == "string" and written is not None and not isinstance(value, (dict, list)):
                hint = f'quote it: "{written}"'
            elif expected == "object" and isinstance(value, list):
                hint = "write key: value pairs here, not a list of - items"
            elif expected == "array" and isinstance(value, dict):
                hint = "write a list of - items here"
            self.add(path, f"{name or 'the document'} must be {want}, got {self.got(path, value)}", hint,
                     code="TK-M103")
        elif validator in ("enum", "const"):
            options = list(error.validator_value) if validator == "enum" else [error.validator_value]
            hint = _suggest(value, options)
            shown = ", ".join(str(o) for o in options)
            if len(options) > 1:
                shown = "one of " + shown
            self.add(path, f"{name} must be {shown}, got {self.got(path, value)}", hint, code="TK-M104")
        elif validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            self.add(path, f"{name} must be {_describe(sub)}, got {self.got(path, value)}",
                     "remove the field to use the default" if "default" in sub else None, code="TK-M105")
        elif validator in ("pattern", "minLength", "maxLength", "minItems", "maxItems"):
            rule = _SHAPES.get(generic)
            if rule:
                self.add(path, f"{name} {rule[0]}, got {self.got(path, value)}", rule[1], code="TK-M106")
            elif validator == "minLength" and error.validator_value == 1:
                self.add(path, f"{name} must not be empty", sub.get("description"), code="TK-M106")
            else:
                self.add(path, f"{name} {error.message}", sub.get("description"), code="TK-M106")
        elif validator == "anyOf" and all(set(s) == {"required"} for s in error.validator_value):
            fields = " or ".join(f"{name}.{f}" for s in error.validator_value for f in s["required"])
            kind_note = (
                f" for type {value['type']}"
                if isinstance(value, dict) and isinstance(value.get("type"), str)
                else ""
            )
            self.add(
                path, f"{fields} is required{kind_note}", sub.get("description"), key=True, code="TK-M101"
            )
        elif validator == "anyOf":
            alternatives = " or ".join(_describe(s) for s in error.validator_value)
            values = [s for s in error.validator_value if s.get("const") != "auto"]
            hint = sub.get("description")
            if len(values) < len(error.validator_value):
                hint = (f'remove the field (or write "auto") to let the service choose, or set '
                        f'{" or ".join(_describe(s) for s in values)}')
            self.add(
                path, f"{name} must be {alternatives}, got {self.got(path, value)}", hint, code="TK-M107"
            )
        elif validator == "oneOf":
            self._one_of(path, value)
        elif validator == "not":
            forbidden = [
                f for f in _required_in(error.validator_value) if isinstance(value, dict) and f in value
            ]
            together = (
                error.validator_value.get("required", [])
                if isinstance(error.validator_value, Mapping)
                else []
            )
            if len(together) > 1 and set(together) == set(forbidden):  # {not: {required: [a, b]}}: not both
                self.add((*path, together[-1]), f"{name} sets {' and '.join(together)}; set only one",
                         sub.get("description"), key=True, code="TK-M108")
                return
            for f in forbidden:
                message, hint = _FORBIDDEN.get((generic, f), (f"{name}.{f} is not allowed here", None))
                self.add((*path, f), message, hint, key=True, code="TK-M108")
            if not forbidden:
                self.add(path, f"{name} {error.message}", None, code="TK-M108")
        else:
            self.add(
                path, f"{name or 'the document'}: {error.message}", sub.get("description"), code="TK-M199"
            )

    def _one_of(self, path: NodePath, value: object) -> None:
        name = field_path(path)
        if not isinstance(value, dict):  # pragma: no cover - the object type is checked first
            return
        if name == "spec" and "model" not in value:  # FineTuneJob: baseModel XOR fromJob
            if "baseModel" in value and "fromJob" in value:
                self.add(
                    (*path, "fromJob"),
                    "spec sets both baseModel and fromJob; set exactly one",
                    "baseModel trains a base model; fromJob trains further the model of another FineTuneJob",
                    key=True,
                    code="TK-M109",
                )
            else:
                self.add(
                    path,
                    "spec needs baseModel (a base model such as gpt-4.1-2025-04-14) or fromJob "
                    "(another FineTuneJob)",
                    "add baseModel: gpt-4.1-2025-04-14",
                    key=True,
                    code="TK-M109",
                )
            return
        # Deployment spec.model: fromJob (+ checkpoint) or name (+ version).
        if "fromJob" in value and "name" in value:
            self.add((*path, "name"), f"{name} sets both fromJob and name; set exactly one",
                     "fromJob deploys a FineTuneJob's model; name (+ version) deploys a base model", key=True,
                     code="TK-M109")
        elif "fromJob" in value and "version" in value:
            self.add((*path, "version"), f"{name}.version is only for base models (with name)",
                     "a FineTuneJob's model is chosen with checkpoint: final | best | <epoch>", key=True,
                     code="TK-M109")
        elif "name" in value and "checkpoint" in value:
            self.add((*path, "checkpoint"), f"{name}.checkpoint is only for fromJob",
                     "a base model is chosen with name and version", key=True, code="TK-M109")
        else:
            self.add(path, f"{name} needs fromJob (a FineTuneJob) or name (a base model)",
                     "for example fromJob: support-bot, or name: gpt-4.1 with version: \"2025-04-14\"",
                     key=True, code="TK-M109")


def _required_in(schema_value: object) -> list[str]:
    """Field names a ``not`` forbids: {required: [...]}, or {anyOf: [{required: [...]}, ...]}."""
    if not isinstance(schema_value, Mapping):
        return []
    found = list(schema_value.get("required", []))
    for sub in schema_value.get("anyOf", []):
        found += _required_in(sub)
    return found


def _suggest(value: object, options: Sequence[object]) -> str | None:
    if not isinstance(value, str):
        return None
    texts = [str(o) for o in options]
    for option in texts:
        if option.lower() == value.lower():
            return f"did you mean {option!r}? Names are case-sensitive"
    close = closest(value, texts)
    return f"did you mean {close!r}?" if close else None


def _describe(sub: Mapping[str, Any]) -> str:
    """A subschema in words: 'an integer from 1 to 50', '"auto"', 'final or best'."""
    if "const" in sub:
        return json.dumps(sub["const"])
    if "enum" in sub:
        return " or ".join(str(v) for v in sub["enum"])
    kind = str(sub.get("type", ""))
    noun = {"integer": "an integer", "number": "a number"}.get(kind, _TYPE_NAMES.get(kind, "a value"))
    low = sub.get("minimum")
    low_ex = sub.get("exclusiveMinimum")
    high = sub.get("maximum")
    high_ex = sub.get("exclusiveMaximum")
    if low is not None and high is not None:
        return f"{noun} from {low} to {high}"
    parts = []
    if low is not None:
        parts.append(f"at least {low}")
    if low_ex is not None:
        parts.append(f"greater than {low_ex}")
    if high is not None:
        parts.append(f"at most {high}")
    if high_ex is not None:
        parts.append(f"less than {high_ex}")
    return f"{noun} " + " and ".join(parts) if parts else noun


def _non_finite(value: object, path: NodePath) -> Iterator[NodePath]:
    if isinstance(value, float) and not math.isfinite(value):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_finite(item, (*path, index))


def _at(value: object, path: NodePath) -> object:
    for part in path:
        value = value[part]  # type: ignore[index]
    return value


def _depth_first(errors: Iterable[ValidationError]) -> list[ValidationError]:
    return sorted(errors, key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path]))


def check_document(document: Document, display: str) -> tuple[str | None, list[Diagnostic]]:
    """Check the envelope (mapping, apiVersion, kind) then the kind's schema. Returns (kind, diagnostics)."""
    explainer = _Explainer(document, display)
    value = document.value
    if not isinstance(value, dict):
        explainer.add(
            (),
            f"a manifest document must be a mapping with apiVersion, kind, metadata and spec, "
            f"got {show(value)}",
            f"start the document with apiVersion: {API_VERSION}",
            code="TK-M001",
        )
        return None, explainer.out
    kind = value.get("kind")
    if not isinstance(kind, str):
        kind = None if "kind" not in value else show(kind)
    if "kind" not in value:
        explainer.add((), "kind is required", f"one of {', '.join(KINDS)}", code="TK-M002")
    elif kind not in KINDS:
        hint = _suggest(value.get("kind"), list(KINDS)) or "write the kind exactly as shown"
        explainer.add(
            ("kind",),
            f"kind must be one of {', '.join(KINDS)}, got {show(value.get('kind'))}",
            hint,
            code="TK-M002",
        )
    api_version = value.get("apiVersion")
    if api_version != API_VERSION:
        message = ("apiVersion is required" if "apiVersion" not in value
                   else f"apiVersion must be {API_VERSION}, got {show(api_version)}")
        explainer.add(("apiVersion",) if "apiVersion" in value else (), message,
                      f"set apiVersion: {API_VERSION}", code="TK-M003")
    if not isinstance(kind, str) or kind not in KINDS:
        return None, explainer.out
    explainer.contract = schema(kind)
    not_finite = list(_non_finite(value, ()))
    for path in not_finite:
        explainer.add(
            path,
            f"{field_path(path)} must be a finite number, got {explainer.got(path, _at(value, path))}",
            "write an ordinary number (.nan and .inf are not values a service accepts)",
            code="TK-M110",
        )
    seen: set[tuple[NodePath, str]] = set()
    for error in _depth_first(_validator(kind).iter_errors(value)):
        path = tuple(error.absolute_path)
        if error.validator == "const" and path == ("apiVersion",):
            continue  # reported above
        if path in not_finite:
            continue  # reported above, in plainer words
        marker = (path, str(error.validator))
        if marker in seen:
            continue
        seen.add(marker)
        explainer.explain(error)
    return kind, explainer.out
