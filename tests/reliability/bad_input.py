"""Bad input, as figures: every corpus case (``corpus.py``) through ``validate`` and ``apply``, plus
hypothesis fuzzing of manifests and datasets; counts tracebacks, requests sent before validation
failed, and the worst time and memory of one case.

    python -m tests.reliability.bad_input [--fuzz N]

Run from the repository root (the default run of the test suite runs the same corpus in
``tests/unit/test_bad_input_corpus.py``). A case "sent a request" when ``apply`` started the
embedded emulator or tried to reach an Account: neither may happen when validation failed.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from .corpus import Case, cases, supported

ENV = {"NO_COLOR": "1", "COLUMNS": "200", "TUNEKEEPER_EMULATOR_SPEED": "20000"}
CONNECT_WORDS = (
    "refused the connection",
    "cannot resolve the host",
    "did not accept a connection",
    "cannot connect to",
)


@dataclass(frozen=True)
class Outcome:
    name: str
    validate_exit: int
    apply_exit: int | None  # None when validate passed (apply would do real work)
    traceback: bool
    requests_before_failure: bool
    seconds: float
    output: str


def _invoke(args: list[str], cwd: Path) -> tuple[int, str, bool]:
    from tunekeeper.cli import main

    runner = CliRunner()
    here = os.getcwd()
    os.chdir(cwd)
    try:
        result = runner.invoke(main, args, env=ENV, catch_exceptions=True)
    finally:
        os.chdir(here)
    text = (result.stdout or "") + (result.stderr or "")
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    crashed = crashed or "Traceback" in text or "and report it" in text
    return result.exit_code, text, crashed


def run_case(case: Case, workdir: Path, *, with_apply: bool = True) -> Outcome:
    root = workdir / "repo"
    root.mkdir(parents=True)
    paths = case.write(root)
    started = time.perf_counter()
    code, text, crashed = _invoke(["validate", *map(str, paths)], root)
    apply_code: int | None = None
    requested = False
    if with_apply and code != 0:
        apply_code, apply_text, apply_crashed = _invoke(["apply", *map(str, paths)], root)
        crashed = crashed or apply_crashed
        text += apply_text
        requested = (root / ".tunekeeper" / "emulator").exists() or any(
            w in apply_text for w in CONNECT_WORDS
        )
    seconds = time.perf_counter() - started
    return Outcome(case.name, code, apply_code, crashed, requested, seconds, text)


def run_corpus() -> list[Outcome]:
    outcomes = []
    for case in cases():
        if not supported(case):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            outcomes.append(run_case(case, Path(tmp)))
    return outcomes


def fuzz(examples: int) -> tuple[int, int]:
    """Hypothesis-generated manifests and dataset lines through the loader and the dataset checks
    in-process; returns (cases tried, crashes). Any exception other than the checks' own results
    is a crash."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from tunekeeper.datasets import validate_bytes
    from tunekeeper.resources import load_with_diagnostics

    tried = [0]
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40))
    values = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=20,
    )
    documents = st.fixed_dictionaries(
        {
            "apiVersion": st.sampled_from(["tunekeeper.io/v1alpha1", "x"]),
            "kind": st.sampled_from(["FineTuneJob", "Deployment", "Account", "Other"]),
            "metadata": st.one_of(values, st.fixed_dictionaries({"name": st.text()})),
            "spec": values,
        }
    )
    raw_text = st.text(max_size=300)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".git").mkdir()
        path = root / "m.yaml"

        @settings(
            max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        @given(st.one_of(documents.map(_as_yaml), raw_text), st.binary(max_size=400))
        def check(manifest: str, dataset: bytes) -> None:
            tried[0] += 1
            path.write_text(manifest, encoding="utf-8", errors="surrogatepass")
            load_with_diagnostics([path], root=root)
            validate_bytes(dataset, filename="fuzz.jsonl")

        check()
    return tried[0], 0


def _as_yaml(document: object) -> str:
    import json

    return json.dumps(document, ensure_ascii=False, allow_nan=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz", type=int, default=2000, help="hypothesis examples (default 2000)")
    args = parser.parse_args()
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    outcomes = run_corpus()
    corpus_seconds = time.perf_counter() - started
    corpus_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    refused = [o for o in outcomes if o.validate_exit != 0]
    worst = max(outcomes, key=lambda o: o.seconds)
    print(f"corpus cases tried:                      {len(outcomes)} ({len(refused)} refused by validate)")
    print(f"tracebacks:                              {sum(o.traceback for o in outcomes)}")
    print(f"requests sent before validation failed: {sum(o.requests_before_failure for o in outcomes)}")
    print(f"slowest case (validate + apply):         {worst.seconds:.2f} s ({worst.name})")
    print(f"whole corpus:                            {corpus_seconds:.1f} s")
    print(
        f"peak RSS over the corpus:                {corpus_rss:.0f} MB (interpreter and imports: "
        f"{baseline_rss:.0f} MB)"
    )
    started = time.perf_counter()
    tried, crashed = fuzz(args.fuzz)
    print(
        f"hypothesis cases tried:                  {tried}, crashes {crashed} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    print(
        f"peak RSS at the end:                     "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    for outcome in outcomes:
        if outcome.traceback or outcome.requests_before_failure:
            print(f"FAILED {outcome.name}\n{outcome.output}")


if __name__ == "__main__":
    main()
