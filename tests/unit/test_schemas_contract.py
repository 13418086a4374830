"""The JSON Schemas in schemas/ are the contract: valid draft 2020-12 (checked by check-jsonschema),
their own examples and every example manifest validate against them, every field is described,
they stay structural (no $ref), and the package ships exactly these files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
EXAMPLES = REPO / "manifests" / "examples"
KIND_FILES = {"Account": "account.schema.json", "FineTuneJob": "finetunejob.schema.json",
              "Deployment": "deployment.schema.json"}


def check_jsonschema(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}/{index}")


def test_schemas_pass_the_metaschema() -> None:
    result = check_jsonschema("--check-metaschema", *sorted(str(p) for p in SCHEMAS.glob("*.json")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_schema_fails_the_metaschema(tmp_path: Path) -> None:
    broken = json.loads((SCHEMAS / "account.schema.json").read_text())
    broken["properties"]["spec"]["properties"]["endpoint"]["type"] = "url"
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    assert check_jsonschema("--check-metaschema", str(tmp_path / "broken.json")).returncode == 1


@pytest.mark.parametrize("kind", sorted(KIND_FILES))
def test_examples_validate_with_check_jsonschema(kind: str, tmp_path: Path) -> None:
    schema = json.loads((SCHEMAS / KIND_FILES[kind]).read_text())
    instances = list(schema["examples"])
    for manifest in sorted(EXAMPLES.rglob("*.yaml")):
        instances += [d for d in yaml.safe_load_all(manifest.read_text()) if d and d.get("kind") == kind]
    files = []
    for index, instance in enumerate(instances):
        path = tmp_path / f"{kind}-{index}.json"
        path.write_text(json.dumps(instance))
        files.append(str(path))
    result = check_jsonschema("--schemafile", str(SCHEMAS / KIND_FILES[kind]), *files)
    assert result.returncode == 0, result.stdout + result.stderr
    # and the same CLI rejects a wrong instance
    bad = dict(instances[0], apiVersion="tunekeeper.io/v1")
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert (
        check_jsonschema(
            "--schemafile", str(SCHEMAS / KIND_FILES[kind]), str(tmp_path / "bad.json")
        ).returncode
        == 1
    )


@pytest.mark.parametrize("name", sorted(KIND_FILES.values()))
def test_schema_is_self_describing_and_structural(name: str) -> None:
    schema = json.loads((SCHEMAS / name).read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/" + name)
    assert schema["title"] and schema["examples"]
    for path, node in walk(schema):
        assert not (isinstance(node, dict) and "$ref" in node), f"$ref at {path}: CRDs need inline schemas"
        conditional = any(f"/{word}/" in path for word in ("if", "then", "else", "not"))
        if path.endswith("/properties") and isinstance(node, dict) and not conditional:
            for field, sub in node.items():
                assert sub.get("description"), f"{path}/{field} has no description"


def test_every_field_with_a_default_documents_it() -> None:
    job = json.loads((SCHEMAS / "finetunejob.schema.json").read_text())
    spec = job["properties"]["spec"]["properties"]
    assert spec["allowReplacement"]["default"] is False
    assert spec["method"]["properties"]["type"]["default"] == "supervised"
    deployment = json.loads((SCHEMAS / "deployment.schema.json").read_text())
    dspec = deployment["properties"]["spec"]["properties"]
    assert dspec["deletionPolicy"]["default"] == "Delete"
    assert dspec["sku"]["properties"]["capacity"]["default"] == 1
    account = json.loads((SCHEMAS / "account.schema.json").read_text())
    assert account["properties"]["spec"]["properties"]["managementEndpoint"]["default"] == "https://management.azure.com"


def test_packaged_schemas_equal_the_contract() -> None:
    packaged = importlib_resources.files("tunekeeper.resources").joinpath("schemas")
    for name in KIND_FILES.values():
        assert packaged.joinpath(name).read_bytes() == (SCHEMAS / name).read_bytes(), name
    shipped = sorted(p.name for p in packaged.iterdir() if p.name.endswith(".json"))
    assert shipped == sorted(p.name for p in SCHEMAS.glob("*.json"))


def test_wheel_ships_the_schemas(tmp_path: Path) -> None:
    """Build a wheel from a copy of the sources (the symlink is followed) and compare its schemas."""
    source = tmp_path / "src"
    shutil.copytree(
        REPO,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "*.egg-info",
            "__pycache__",
            ".tunekeeper",
            "build",
            "dist",
            ".pytest_cache",
            ".mypy_cache",
            "bench",
            "tests",
        ),
    )
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if build.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {build.stderr.strip().splitlines()[-1:]}")
    (wheel,) = (tmp_path / "dist").glob("tunekeeper-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for name in KIND_FILES.values():
            assert archive.read(f"tunekeeper/resources/schemas/{name}") == (SCHEMAS / name).read_bytes()
