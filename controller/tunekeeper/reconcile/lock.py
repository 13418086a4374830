"""One writer at a time: a lock per owner and account, as a file under the state folder.

Taken by the CLI around ``apply`` and ``gc`` (``plan`` and ``status`` change nothing and take
none). ``.tunekeeper/locks/<owner id>-<account>.lock`` holds who has it: process id, host,
since when, and the command. A second run finds it and stops at once with a message naming the
holder, before anything is sent. A lock is stale, and taken over with a warning, when its holder
is a process on this host that no longer runs, or when it is older than ``STALE_AFTER`` (a run
on another host that never came back). This guards one machine (or a shared disk); two CI
runners do not share it: their concurrency group does that (see the README), and a job that a
lost response made twice is still cancelled by the next plan.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from tunekeeper.errors import TunekeeperError
from tunekeeper.localfiles import own_folder, read_own_file

LOCK_DIR = "locks"
STALE_AFTER = timedelta(hours=24)  # no apply --wait waits that long without being seen again
# A lock file is empty between its creation and its first write: while that young, an unreadable
# file is a run taking the lock, not a leftover, and is never taken over.
BEING_WRITTEN = timedelta(seconds=30)
MAX_LOCK_BYTES = 64 << 10  # a lock file holds a line of JSON


class LockHeld(TunekeeperError):
    """Another run holds the lock of this owner and account."""


@dataclass(frozen=True, slots=True)
class Holder:
    pid: int
    host: str
    since: datetime
    command: str = ""

    def describe(self, now: datetime) -> str:
        age = now - self.since
        minutes = int(age.total_seconds() // 60)
        ago = f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
        return (f"pid {self.pid} on host {self.host} ({self.command or 'tunekeeper'}), since "
                f"{self.since.isoformat(timespec='seconds')} ({ago} ago)")


def lock_path(state_dir: Path, owner: str, account: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in account)
    return own_folder(state_dir, LOCK_DIR) / f"{owner}-{safe}.lock"


@contextlib.contextmanager
def hold(state_dir: Path, owner: str, accounts: Sequence[str], *, command: str,
         warn: Callable[[str], None] | None = None, now: datetime | None = None) -> Iterator[None]:
    """Hold the locks of ``owner`` on every account while in the block (sorted: two runs never deadlock)."""
    taken: list[Path] = []
    try:
        for account in sorted(set(accounts)):
            path = lock_path(state_dir, owner, account)
            _acquire(path, account, command=command, warn=warn, now=now or datetime.now(UTC))
            taken.append(path)
        yield
    finally:
        for path in reversed(taken):
            path.unlink(missing_ok=True)


def _acquire(path: Path, account: str, *, command: str, warn: Callable[[str], None] | None,
             now: datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": now.isoformat(), "command": command}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = read_holder(path)
            if holder is not None and not is_stale(holder, now):
                raise LockHeld(
                    f"Another run is changing account {account} for this stack: {holder.describe(now)}",
                    hint=f"wait for it to finish; if it is gone for good, delete {path}",
                ) from None
            if holder is None and _younger_than(path, BEING_WRITTEN):
                raise LockHeld(
                    f"Another run is changing account {account} for this stack: its lock is being taken",
                    hint=f"run the command again in a moment; if no run is going on, delete {path}",
                ) from None
            if warn is not None:
                what = holder.describe(now) if holder is not None else "unreadable"
                warn(f"Took over a stale lock of account {account} ({what}).")
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "wb") as handle:
            handle.write(orjson.dumps(me))
        return
    raise LockHeld(f"Could not take the lock of account {account}: another run took it at the same moment",
                   hint="run the command again")


def read_holder(path: Path) -> Holder | None:
    """Who holds a lock file (None when it cannot be read: a half-written or foreign file)."""
    raw = read_own_file(path, MAX_LOCK_BYTES)  # a link or a huge file is no lock of ours
    if raw is None:
        return None
    try:
        data = orjson.loads(raw)
        since = datetime.fromisoformat(str(data["since"]))
        return Holder(
            int(data["pid"]),
            str(data["host"]),
            since if since.tzinfo else since.replace(tzinfo=UTC),
            str(data.get("command", "")),
        )
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def is_stale(holder: Holder, now: datetime) -> bool:
    """A holder that is dead (same host) or too old (any host) no longer holds the lock."""
    if now - holder.since > STALE_AFTER:
        return True
    return holder.host == socket.gethostname() and not _alive(holder.pid)


def _younger_than(path: Path, age: timedelta) -> bool:
    """Was ``path`` modified less than ``age`` ago (by the file system's clock)? False when it is gone."""
    try:
        modified = datetime.fromtimestamp(path.lstat().st_mtime, UTC)
    except OSError:
        return False
    return datetime.now(UTC) - modified < age


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it runs, as another user
    return True
