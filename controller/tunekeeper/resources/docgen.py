"""Generate docs/resources.md, the field reference, from the JSON Schemas.

Run ``python -m tunekeeper.resources.docgen > docs/resources.md`` after changing a schema; a
test checks the committed page matches. Reads only the packaged schemas; writes to stdout.

Must not: describe anything the schemas do not say (the schemas are the contract), except the
loader's rules across resources, listed at the end from ``CROSS_RESOURCE_RULES``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from tunekeeper.resources._schema import KINDS, schema

CROSS_RESOURCE_RULES = (
    "Names are unique per kind (a FineTuneJob and a Deployment may share a name).",
    (
        "`spec.account` names an Account in the manifests. Omitted: the only Account; with no Account at "
        "all, the embedded emulator; with two or more Accounts it is required."
    ),
    (
        "`fromJob` (in FineTuneJob and in Deployment `spec.model`) names a FineTuneJob in the manifests; "
        "chains of `fromJob` must not form a cycle. A FineTuneJob continues a job of the same account; a "
        "Deployment may serve a model trained in another declared Account (deployed with ARM's "
        "`properties.model.source`: Azure's cross-region and cross-subscription deployment)."
    ),
    (
        "Data paths (`trainingFile`, `validationFile`, `gates.evalFile`) are relative to the manifest's "
        "folder, must exist, be files, and stay inside the repository root (the nearest folder with `.git`): "
        "no `..` escape, no symlink pointing outside, no absolute path. URLs must be https (evalFile must be "
        "a path)."
    ),
    (
        "A Deployment's numbered `checkpoint` must not exceed the job's `n_epochs` (when it is a number), "
        "and must be one of the last three epochs: the service keeps only the last three checkpoints."
    ),
    (
        "Metric gates on `valid_*` / `full_valid_*` metrics need the job to have a `validationFile`; a "
        "base-model Deployment cannot have metric gates."
    ),
    "A reinforcement fine-tuned model can only be trained further with method `reinforcement`.",
    (
        "An eval file (`gates.evalFile`) follows the format of [gates.md](gates.md): chat examples whose "
        "last message is the expected answer; each example's system message must be one the served "
        "FineTuneJob's training file has (checked by `tunekeeper validate`, and before `plan` and `apply`)."
    ),
    (
        "Warning (the service decides): method `reinforcement` on a model that is not an o-series reasoning "
        "model, or another method on one."
    ),
)

DECISIONS = (
    (
        "Enum values are case-sensitive and spelled exactly as Azure spells them (`Standard`, not "
        "`standard`): the schema, the CLI and the Kubernetes CRDs accept the same manifests. A value in "
        "another case is an error whose hint names the right spelling."
    ),
    (
        "YAML is read with `yaml.safe_load` rules, plus: duplicate keys are errors, keys must be text, a "
        "document may expand to at most 100,000 values (alias bombs are refused) and nest at most 64 levels. "
        "Unquoted dates (`version: 2025-04-14`) are read as the text written; numbers with leading zeros "
        "(`0125`) are numbers in YAML 1.1, so quote such versions."
    ),
    (
        "In a folder, only YAML documents that are tunekeeper resources (their `apiVersion` or `kind` says "
        "so) are read, so CI configs and charts can live alongside; a file named explicitly must be a "
        "manifest."
    ),
)


def _type_of(node: Mapping[str, Any]) -> str:
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "anyOf" in node:
        return " or ".join(_type_of(s) for s in node["anyOf"])
    kind = node.get("type", "any")
    text = {"object": "object", "array": "list", "integer": "integer", "number": "number", "string": "string",
            "boolean": "boolean"}.get(kind, str(kind))
    if kind == "array" and isinstance(node.get("items"), Mapping):
        text = f"list of {_type_of(node['items'])}"
    return text


def _constraints(node: Mapping[str, Any]) -> str:
    parts = []
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    for key, label in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if key in node:
            parts.append(f"{label} {node[key]}")
    if "minLength" in node and node["minLength"] > 1:
        parts.append(f"length >= {node['minLength']}")
    if "maxLength" in node:
        parts.append(f"length <= {node['maxLength']}")
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`")
    for alternative in node.get("anyOf", []):
        sub = _constraints(alternative)
        if sub:
            parts.append(sub)
    return "; ".join(parts)


def _rows(node: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Mapping[str, Any], bool]]:
    required = set(node.get("required", []))
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        yield path, sub, name in required
        if sub.get("type") == "object" and "properties" in sub:
            yield from _rows(sub, path)
        items = sub.get("items")
        if isinstance(items, Mapping) and "properties" in items:
            yield from _rows(items, path + "[]")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    lines = [
        "# Resource reference",
        "",
        "<!-- Generated by `python -m tunekeeper.resources.docgen` from schemas/*.json; do not edit. -->",
        "",
        (
            "tunekeeper reads three kinds of resource, all with `apiVersion: tunekeeper.io/v1alpha1`. The "
            "JSON Schemas in `schemas/` are the contract (point your editor at them: each has an `$id`); "
            "`tunekeeper validate` checks manifests against them and then checks the rules across resources "
            "listed at the end."
        ),
        "",
    ]
    for kind, filename in KINDS.items():
        contract = schema(kind)
        lines += [f"## {kind}", "", contract.get("description", ""), "",
                  f"Schema: `schemas/{filename}` (`$id` {contract['$id']})", "",
                  "| field | type | required | default | constraints | description |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for path, sub, required in _rows(contract, ""):
            default = f"`{json.dumps(sub['default'])}`" if "default" in sub else ""
            lines.append(
                f"| `{path}` | {_cell(_type_of(sub))} | {'yes' if required else ''} | {_cell(default)} | "
                f"{_cell(_constraints(sub))} | {_cell(sub.get('description', ''))} |"
            )
        lines += ["", "Example:", "", "```yaml"]
        import yaml

        lines += yaml.safe_dump(contract["examples"][0], sort_keys=False).rstrip().splitlines()
        lines += ["```", ""]
    lines += ["## Rules across resources", ""]
    lines += [f"- {rule}" for rule in CROSS_RESOURCE_RULES]
    lines += ["", "## Reading manifests", ""]
    lines += [f"- {rule}" for rule in DECISIONS]
    lines += [
        "",
        (
            "Every problem is reported as `path:line:column: error: message` with the field path and a "
            "hint, all of them at once, sorted by file and line."
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    print(render(), end="")


if __name__ == "__main__":
    main()
