"""The CRDs in manifests/crds/ and charts/tunekeeper/crds/ are generated from schemas/ and stay so;
they are structural (the rules the API server enforces), and every example CR validates against them.

No cluster exists here: structural rules are checked by walking the schema, and the example CRs are
validated with jsonschema against each CRD's openAPIV3Schema (OpenAPI v3 is JSON Schema draft 4
plus the x-kubernetes extensions, which are read as documented).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from tunekeeper.resources import crdgen

REPO = Path(__file__).resolve().parents[2]
CLUSTER_EXAMPLES = REPO / "manifests" / "cluster"
EXAMPLES = REPO / "manifests" / "examples"
JUNCTORS = ("allOf", "anyOf", "oneOf", "not")


def committed(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob(f"*.{crdgen.GROUP}.yaml"))}


@pytest.mark.parametrize("folder", crdgen.OUTPUT_DIRS, ids=str)
def test_committed_crds_match_the_schemas(folder: Path) -> None:
    assert committed(REPO / folder) == crdgen.rendered(), (
        f"{folder} is stale: run python -m tunekeeper.resources.crdgen")


def test_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    assert crdgen.main(["--root", str(tmp_path)]) == 0
    assert crdgen.main(["--root", str(tmp_path), "--check"]) == 0
    stale = tmp_path / crdgen.OUTPUT_DIRS[0] / crdgen.file_name("FineTuneJob")
    stale.write_text(stale.read_text().replace("ftjob", "fj"))
    assert crdgen.main(["--root", str(tmp_path), "--check"]) == 1


def walk(node: Any, path: str = "", in_junctor: bool = False) -> Iterator[tuple[str, dict[str, Any], bool]]:
    if not isinstance(node, dict):
        return
    yield path, node, in_junctor
    for key, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{key}", in_junctor)
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]", in_junctor)
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}", in_junctor)
    for junctor in JUNCTORS:
        subs = node.get(junctor)
        for index, sub in enumerate(subs if isinstance(subs, list) else [subs] if subs else []):
            yield from walk(sub, f"{path}/{junctor}[{index}]", True)


@pytest.mark.parametrize("kind", sorted(crdgen.NAMES))
def test_crd_is_structural(kind: str) -> None:
    crd = crdgen.crd(kind)
    (version,) = crd["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]
    allowed = {
        "type",
        "format",
        "title",
        "description",
        "enum",
        "maximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "required",
        "properties",
        "items",
        "additionalProperties",
        "example",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-int-or-string",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        *JUNCTORS,
    }
    for path, node, in_junctor in walk(schema):
        assert set(node) <= allowed, (
            f"{kind}{path}: {sorted(set(node) - allowed)} is not OpenAPI v3 as CRDs know it"
        )
        int_or_string = node.get("x-kubernetes-int-or-string")
        if in_junctor:
            assert not {"description", "default", "additionalProperties", "nullable", "title"} & set(node), (
                f"{kind}{path}: a junctor branch may only validate values")
            continue
        if int_or_string:
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}]
            continue
        assert node.get("type") or node.get("x-kubernetes-preserve-unknown-fields"), (
            f"{kind}{path} has no type"
        )
        assert not ("properties" in node and "additionalProperties" in node), f"{kind}{path}"
        for junctor in ("allOf", "anyOf", "oneOf"):
            for branch in node.get(junctor, []):
                for field in branch.get("properties", {}):
                    assert field in node.get("properties", {}), f"{kind}{path}: {field} only inside {junctor}"
    assert schema["properties"]["metadata"] == {"type": "object"}


def test_short_names_and_columns() -> None:
    names = {kind: crdgen.crd(kind)["spec"]["names"] for kind in crdgen.NAMES}
    short = [s for n in names.values() for s in n["shortNames"]]
    # apps/v1 Deployment answers to "deploy" and "deployment(s)": ours must not
    assert not {"deploy", "deployment", "deployments"} & set(short)
    assert "ftdeploy" in names["Deployment"]["shortNames"] and "ftjob" in names["FineTuneJob"]["shortNames"]
    columns = [
        c["name"] for c in crdgen.crd("FineTuneJob")["spec"]["versions"][0]["additionalPrinterColumns"]
    ]
    assert columns[:4] == ["Ready", "Reason", "Job", "Status"] and columns[-1] == "Age"


def openapi_validator(kind: str) -> jsonschema.Draft4Validator:
    """A validator for the CRD's schema: OpenAPI v3's keywords are draft 4's; int-or-string is an anyOf."""
    schema = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def cluster_documents() -> list[tuple[str, Mapping[str, Any]]]:
    out = []
    for path in sorted(CLUSTER_EXAMPLES.glob("*.yaml")):
        out += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return out


@pytest.mark.parametrize(
    "name,document",
    [(n, d) for n, d in cluster_documents() if d["apiVersion"].startswith("tunekeeper.io/")],
    ids=lambda v: v if isinstance(v, str) else f"{v['kind']}/{v['metadata']['name']}",
)
def test_example_crs_validate_against_the_generated_crds(name: str, document: Mapping[str, Any]) -> None:
    validator = openapi_validator(document["kind"])
    errors = sorted(validator.iter_errors(document), key=str)
    assert not errors, f"{name}: {errors[0].message} at {list(errors[0].absolute_path)}"


def test_a_wrong_cr_fails_the_generated_crd() -> None:
    job = next(d for _, d in cluster_documents() if d["kind"] == "FineTuneJob")
    broken = {**job, "spec": {**job["spec"], "method": {"type": "unsupervised"}}}
    assert list(openapi_validator("FineTuneJob").iter_errors(broken))
    no_base = {**job, "spec": {k: v for k, v in job["spec"].items() if k not in ("baseModel", "fromJob")}}
    assert list(openapi_validator("FineTuneJob").iter_errors(no_base))


def test_every_example_folder_has_its_crs() -> None:
    """Same resources and specs as the folder's manifests; only data paths gain the folder's name."""
    for folder in sorted(p for p in EXAMPLES.iterdir() if p.is_dir()):
        cluster = CLUSTER_EXAMPLES / f"{folder.name}.yaml"
        assert cluster.is_file(), f"{folder.name} has no custom resources in manifests/cluster/"
        local = [d for f in sorted(folder.glob("*.yaml")) if f.name != "tunekeeper.yaml"  # the stack file
                 for d in yaml.safe_load_all(f.read_text()) if d]
        crs = [d for d in yaml.safe_load_all(cluster.read_text()) if d]
        assert [(d["kind"], d["metadata"]["name"]) for d in crs] == [
            (d["kind"], d["metadata"]["name"]) for d in local
        ]
        for mine, theirs in zip(crs, local, strict=True):
            spec = dict(mine["spec"])
            for key in ("trainingFile", "validationFile"):
                if key in spec:
                    assert spec[key] == f"{folder.name}/{theirs['spec'][key]}"
                    spec[key] = theirs["spec"][key]
            if "evalFile" in spec.get("gates", {}):
                gates = dict(spec["gates"])
                assert gates["evalFile"] == f"{folder.name}/{theirs['spec']['gates']['evalFile']}"
                spec["gates"] = {**gates, "evalFile": theirs["spec"]["gates"]["evalFile"]}
            assert spec == theirs["spec"], (
                f"{cluster.name}: {mine['kind']}/{mine['metadata']['name']} drifted"
            )
