"""results.jsonl: one line per finished trial, the sweep's only source of truth.

Every write replaces the whole file atomically (write a temporary file, fsync, rename), so a sweep killed at
any moment leaves either the old file or the new one, never a truncated line. Reports are rendered from
this file alone.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

FILENAME = "results.jsonl"


def read(out_dir: str | Path) -> list[dict]:
    path = Path(out_dir) / FILENAME
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise ValueError(f"{path}:{number}: not a JSON line; was the file edited by hand?") from None
    return records


def append(out_dir: str | Path, record: dict) -> None:
    path = Path(out_dir) / FILENAME
    existing = path.read_bytes() if path.exists() else b""
    line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    write_atomic(path, existing + line)


def completed(records: list[dict]) -> dict[str, dict]:
    """Successful trials by trial id, for resuming a sweep (the latest record of an id wins)."""
    done = {}
    for record in records:
        if record.get("status") == "ok":
            done[record["trial_id"]] = record
        else:
            done.pop(record.get("trial_id"), None)
    return done


def write_atomic(path: str | Path, content: bytes | str) -> None:
    path = Path(path)
    data = content.encode("utf-8") if isinstance(content, str) else content
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; reports are for sharing
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
