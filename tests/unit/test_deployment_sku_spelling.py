"""The Deployment SKU is spelled as ARM spells it (``DeveloperTier``); the portal's ``Developer`` is a
deprecated alias: accepted with a warning at its file and line, and read as ``DeveloperTier``."""

from __future__ import annotations

from pathlib import Path

import pytest
from tunekeeper.errors import ManifestError
from tunekeeper.resources import Sku, load

MANIFEST = """\
apiVersion: tunekeeper.io/v1alpha1
kind: Deployment
metadata:
  name: bot
spec:
  model: {{name: gpt-4.1, version: "2025-04-14"}}
  sku:
    name: {sku}
    capacity: 5
"""


def write(tmp_path: Path, sku: str) -> Path:
    (tmp_path / ".git").mkdir(exist_ok=True)
    path = tmp_path / "bot.yaml"
    path.write_text(MANIFEST.format(sku=sku))
    return path


def test_arm_spelling_loads_without_warnings(tmp_path: Path) -> None:
    desired, warnings = load([write(tmp_path, "DeveloperTier")], root=tmp_path)
    assert desired.deployments[0].sku is Sku.DEVELOPER_TIER and Sku.DEVELOPER_TIER.value == "DeveloperTier"
    assert warnings == ()


def test_portal_spelling_is_read_as_arm_spelling_with_a_warning(tmp_path: Path) -> None:
    desired, warnings = load([write(tmp_path, "Developer")], root=tmp_path)
    assert desired.deployments[0].sku is Sku.DEVELOPER_TIER
    [warning] = warnings
    assert warning.render() == (
        f"{warning.path}:8:11: warning: spec.sku.name Developer is deprecated: ARM names this DeveloperTier; "
        "read as DeveloperTier\n  hint: write DeveloperTier")
    assert warning.path.endswith("bot.yaml")


@pytest.mark.parametrize("sku", ["developer", "Developertier", "Dev"])
def test_other_spellings_are_errors_that_name_the_arm_spelling(tmp_path: Path, sku: str) -> None:
    with pytest.raises(ManifestError) as raised:
        load([write(tmp_path, sku)], root=tmp_path)
    [error] = raised.value.diagnostics
    assert (error.line, error.severity, error.field_path) == (8, "error", "spec.sku.name")
    assert "DeveloperTier" in error.message and f"got {sku!r}" in error.message
