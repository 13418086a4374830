"""docs/resources.md is generated from the schemas and must match them (regenerate with
``python -m tunekeeper.resources.docgen > docs/resources.md``)."""

from __future__ import annotations

import json
from pathlib import Path

from tunekeeper.resources.docgen import render

REPO = Path(__file__).resolve().parents[2]


def test_reference_page_is_up_to_date() -> None:
    assert (REPO / "docs" / "resources.md").read_text() == render()


def test_reference_page_lists_every_field() -> None:
    page = render()
    for schema_file in sorted((REPO / "schemas").glob("*.json")):
        spec = json.loads(schema_file.read_text())["properties"]["spec"]["properties"]
        for field in spec:
            assert f"| `spec.{field}` |" in page, (schema_file.name, field)
    assert "| `spec.method.hyperparameters.n_epochs` |" in page
    assert "| `spec.gates.metrics[].metric` |" in page
