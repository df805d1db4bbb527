"""Who may write an output directory: one sweep or training run at a time, and one append at a time.

Both are ``flock`` locks (the ``filelock`` package) on files beside the results, so the kernel drops them
when their process dies: a killed sweep never leaves a lock behind that blocks the next one.

- ``file_lock(path)``: held for one append to ``path`` (results.jsonl), so two writers never interleave.
- ``claim(out_dir, command)``: held by ``orchestrator sweep`` / ``train`` for as long as they run. A second one
  on the same directory is refused at once with who holds it (pid, command, since when), exit 2, and
  nothing written. Readers (``report``, ``recommend``) take no lock: every line they read is whole.

A URI output (``s3://...``) is staged in a fresh local directory per process, so this lock cannot see a
second writer on another machine; give each concurrent sweep its own --out there.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from orchestrator.errors import UserError

CLAIM = ".orchestrator.lock"
OWNER = ".orchestrator.owner.json"
APPEND_TIMEOUT_S = 60.0
"""How long one append waits for another's (each holds the lock for one write and an fsync)."""


@contextlib.contextmanager
def file_lock(path: str | Path, timeout_s: float = APPEND_TIMEOUT_S) -> Iterator[None]:
    """Exclusive while one short write to ``path`` runs."""
    lock = FileLock(str(Path(path).parent / f".{Path(path).name}.lock"), timeout=timeout_s, is_singleton=False, thread_local=False)
    try:
        with lock:
            yield
    except Timeout:
        raise UserError(f"{path}: another process has held its lock for over {timeout_s:.0f} s; is a process "
                        f"stuck writing it? (lock file .{Path(path).name}.lock beside it)") from None


def owner(out_dir: str | Path) -> dict:
    """What the holder of ``out_dir``'s claim wrote about itself ({} where nothing readable)."""
    try:
        return json.loads((Path(out_dir) / OWNER).read_text())
    except (OSError, ValueError):
        return {}


def refusal(out_dir: str | Path, command: str, holder: dict) -> str:
    who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, `orchestrator {holder.get('command', '?')}` "
           f"since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(holder['since']))}" if holder.get("since")
           else "another process")
    return (f"--out {out_dir}: {who} is writing there; wait for it to finish (its results are appended as each "
            f"trial ends), or pass another --out to run `orchestrator {command}` beside it")


@contextlib.contextmanager
def claim(out_dir: str | Path, command: str) -> Iterator[None]:
    """Hold ``out_dir`` for one ``orchestrator COMMAND`` run; refuse (UserError) when another holds it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / CLAIM), timeout=0, is_singleton=False, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise UserError(refusal(out, command, owner(out))) from None
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command, "since": time.time()}
        tmp = out / f"{OWNER}.{os.getpid()}.tmp"  # replaced whole: a refused second writer never reads half of it
        tmp.write_text(json.dumps(info) + "\n")
        os.replace(tmp, out / OWNER)
        yield
    finally:
        with contextlib.suppress(OSError):
            (out / OWNER).unlink()
        lock.release()
