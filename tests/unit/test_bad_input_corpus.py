"""Every case of the hostile-input corpus (tests/reliability/corpus.py, 280+ cases) through ``validate``
and ``apply`` in-process: never a traceback, and when validation fails, nothing is sent anywhere
(the embedded emulator never starts, no Account is contacted). Hypothesis fuzzes the loader and the
dataset checks on top. ``python -m tests.reliability.bad_input`` prints the same as figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability.bad_input import run_case
from reliability.corpus import Case, cases, supported
from tunekeeper.datasets import validate_bytes
from tunekeeper.resources import load_with_diagnostics

CASES = [c for c in cases() if supported(c)]
# The alias bombs that fill a whole file's or a whole run's value budget take seconds each; they
# run with the slow scenarios (make test-all, CI), and tests/unit/test_manifest_discovery.py covers
# their limits in the default run.
HEAVY = {"fs/alias-bombs-30-files", "fs/alias-bombs-200-documents"}
PARAMS = [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.name in HEAVY else []) for c in CASES]


def test_the_corpus_has_at_least_200_cases() -> None:
    assert len(CASES) >= 200


@pytest.mark.parametrize("case", PARAMS)
def test_a_hostile_case_gets_diagnostics_never_a_traceback_nor_a_request(case: Case, tmp_path: Path) -> None:
    outcome = run_case(case, tmp_path)
    assert not outcome.traceback, outcome.output
    assert not outcome.requests_before_failure, outcome.output
    assert outcome.validate_exit in (0, 1, 2), outcome.output  # 2: a path that does not exist (usage)
    if outcome.apply_exit is not None:
        assert outcome.apply_exit in (1, 2), outcome.output
    assert "OUTSIDE-SECRET" not in outcome.output  # nothing of a file outside the repository is echoed


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(manifest=st.text(max_size=300), dataset=st.binary(max_size=300))
def test_fuzzed_manifests_and_datasets_give_diagnostics(
    manifest: str, dataset: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    (root / ".git").mkdir()
    path = root / "m.yaml"
    path.write_text(manifest, encoding="utf-8", errors="surrogatepass")
    load_with_diagnostics([path], root=root)  # never raises: every problem is a diagnostic
    validate_bytes(dataset, filename="fuzz.jsonl")
