"""Fixtures of the unit tests (pure: a temporary folder at most, no sockets).

``repo`` is a repository root (it holds ``.git``) with ``data/train.jsonl`` and
``data/valid.jsonl``, twelve valid chat examples each, for test manifests to reference.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n' * 12


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text(DATA)
    (tmp_path / "data" / "valid.jsonl").write_text(DATA)
    return tmp_path
