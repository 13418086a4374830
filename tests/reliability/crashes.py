"""Crashes, as figures: ``kill -9`` of ``tunekeeper apply --wait`` at every action boundary in turn and at
seeded random moments, over the whole lifecycle of every example folder (on the embedded
emulator), each followed by a run to the end.

    python -m tests.reliability.crashes [--examples clippy,dpo] [--random 3] [--seed N]

For each example: a clean run counts its action boundaries (the "✓" lines apply prints). Then, for
each boundary N, a fresh copy is killed right after its N-th finished action, and one more apply
runs it to the end; then ``--random`` fresh copies are killed at seeded random points (a random
number of finished actions plus a random fraction of a second), up to three times each, before
the final run. After every final run the emulator's store is listed through the official
clients: duplicates (a file, job or deployment held twice), leaks (objects no manifest declares)
and whether the next plan is empty (converged). Examples with Account manifests are left out.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tunekeeper.resources import load

from tests.e2e import test_kill
from tests.e2e.cli_helpers import EXAMPLES, inventory, run_process


@dataclass(frozen=True)
class Trial:
    kind: str  # "boundary N" or "random"
    kills: int
    runs_to_converge: int
    duplicates: int
    leaks: int
    converged: bool


def _fresh(name: str, workdir: Path) -> Path:
    target = workdir / name
    shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns(".tunekeeper"))
    return target


def _check(project: Path, kills: int, kind: str) -> Trial:
    final = run_process(
        "apply", ".", "--wait", "--timeout", "300", cwd=project, env=test_kill.SPEED, timeout=400
    )
    desired, _ = load([project], root=project)
    held = inventory(project)
    duplicates = sum(c - 1 for c in held.uploaded.values()) + sum(c - 1 for c in held.deployments.values())
    duplicates += max(0, len(held.jobs) - len(desired.jobs))
    leaks = len(set(held.deployments) - {d.name for d in desired.deployments})
    settled = run_process("plan", ".", "--detailed-exitcode", cwd=project, env=test_kill.SPEED)
    return Trial(kind, kills, kills + 1, duplicates, leaks, final.exit_code == 0 and settled.exit_code == 0)


def boundaries(name: str, workdir: Path) -> int:
    project = _fresh(name, workdir / "count")
    done = run_process("apply", ".", "--wait", "--no-progress", cwd=project, env=test_kill.SPEED, timeout=400)
    return sum(1 for line in done.stderr.splitlines() if line.startswith("✓"))


def trials(name: str, workdir: Path, *, randoms: int, rng: random.Random) -> list[Trial]:
    found: list[Trial] = []
    count = boundaries(name, workdir)
    for n in range(1, count + 1):
        project = _fresh(name, workdir / f"b{n}")
        killed = test_kill._apply_until_killed(project, after_lines=n, jitter=0.0)
        found.append(_check(project, int(killed), f"boundary {n}"))
    for r in range(randoms):
        project = _fresh(name, workdir / f"r{r}")
        kills = 0
        for _ in range(3):
            after = rng.randint(0, count)
            kills += test_kill._apply_until_killed(project, after_lines=after, jitter=rng.uniform(0.0, 0.5))
        found.append(_check(project, kills, "random"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--examples", default="", help="comma-separated names (default: all without Accounts)"
    )
    parser.add_argument("--random", type=int, default=2, help="random-kill trials per example")
    parser.add_argument("--seed", type=int, default=20261130)
    args = parser.parse_args()
    names = [n for n in args.examples.split(",") if n] or sorted(
        p.name
        for p in EXAMPLES.iterdir()
        if p.is_dir() and not any("kind: Account" in f.read_text() for f in p.glob("*.yaml"))
    )
    rng = random.Random(args.seed)
    print(
        f"{'example':22} {'trials':>6} {'kills':>5} {'max runs':>8} {'dups':>5} {'leaks':>5} {'converged':>9}"
    )
    all_trials: list[Trial] = []
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            found = trials(name, Path(tmp), randoms=args.random, rng=rng)
        all_trials += found
        print(
            f"{name:22} {len(found):>6} {sum(t.kills for t in found):>5} "
            f"{max(t.runs_to_converge for t in found):>8} {sum(t.duplicates for t in found):>5} "
            f"{sum(t.leaks for t in found):>5} {sum(t.converged for t in found):>4}/{len(found)}"
        )
    print(
        f"all: {len(all_trials)} trials, {sum(t.kills for t in all_trials)} SIGKILLs, duplicates "
        f"{sum(t.duplicates for t in all_trials)}, leaks {sum(t.leaks for t in all_trials)}, converged "
        f"{sum(t.converged for t in all_trials)}/{len(all_trials)}, at most "
        f"{max(t.runs_to_converge for t in all_trials)} runs to converge"
    )


if __name__ == "__main__":
    main()
