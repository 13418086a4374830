"""Run every benchmark in bench/ in turn (``make bench``).

Each ``bench/*.py`` other than this file is a standalone script that prints its own figures;
this runner only starts them one after the other with the current interpreter, shows which is
running, and exits non-zero if any of them failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    scripts = sorted(
        p for p in HERE.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_")
    )
    failed: list[str] = []
    for script in scripts:
        print(f"== {script.name}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"== {script.name}: {'ok' if code == 0 else f'failed (exit {code})'} in "
              f"{time.perf_counter() - started:.1f} s\n", flush=True)
        if code != 0:
            failed.append(script.name)
    if failed:
        print(f"{len(failed)} benchmark(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"{len(scripts)} benchmark(s) ran.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
