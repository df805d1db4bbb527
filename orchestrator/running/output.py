"""Where a sweep's results and reports go: a local directory, or a URI Ray Train's ``storage_path`` accepts
(``s3://``, ``gs://``, ``file://`` on a shared filesystem, ...) through ``pyarrow.fs``.

A URI output is staged in a local directory: existing files are fetched first (so a sweep resumes), and
every file is uploaded again each time it changes, whole (an object store's PUT replaces an object
atomically).
"""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath

from orchestrator.errors import UserError

SYNCED = ("results.jsonl", "report.json", "report.csv", "report.md", "report.html")


def is_uri(target: str) -> bool:
    return "://" in target


class Output:
    """Validated on construction (cheap, nothing touched); ``open()`` stages a URI output locally."""

    def __init__(self, target: str):
        self.target = target
        if "\x00" in target or ".." in PurePosixPath(target.split("://", 1)[-1]).parts:
            raise UserError(f"--out {target!r}: must not contain '..' segments")
        self._fs = None
        self.local = Path(target)
        if not is_uri(target) and self.local.exists() and not self.local.is_dir():
            raise UserError(f"--out {target}: exists and is not a directory")

    def open(self) -> "Output":
        if not is_uri(self.target) or self._fs:
            return self
        import pyarrow.fs

        target = self.target

        try:
            self._fs, self._root = pyarrow.fs.FileSystem.from_uri(target)
        except Exception as err:  # pyarrow raises ArrowInvalid / OSError with a precise reason
            raise UserError(f"--out {target}: not a storage URI pyarrow can open ({err})") from None
        self.local = Path(tempfile.mkdtemp(prefix="orchestrator-out-"))
        self._fetch()
        return self

    @property
    def location(self) -> str:
        """What to tell the user: the absolute local path, or the URI."""
        return self.target if is_uri(self.target) else str(self.local.resolve())

    def storage_default(self) -> str:
        """Ray Train's storage_path when the spec gives none: beside the results."""
        if is_uri(self.target):
            return self.target.rstrip("/") + "/ray_storage"
        return str((self.local / "ray_storage").resolve())

    def _fetch(self) -> None:
        import pyarrow.fs

        for name in SYNCED:
            info = self._fs.get_file_info(f"{self._root}/{name}")
            if info.type == pyarrow.fs.FileType.File:
                with self._fs.open_input_stream(info.path) as stream:
                    (self.local / name).write_bytes(stream.read())

    def sync(self, extra: list[str] = ()) -> None:
        """Upload every result and report file that exists locally, and the ``extra`` files (paths relative
        to the output, e.g. a trial's TensorBoard event files); a no-op for a local directory."""
        if not self._fs:
            return
        self._fs.create_dir(self._root, recursive=True)
        for name in (*SYNCED, *extra):
            path = self.local / name
            if path.exists():
                if "/" in name:
                    self._fs.create_dir(f"{self._root}/{name.rsplit('/', 1)[0]}", recursive=True)
                with self._fs.open_output_stream(f"{self._root}/{name}") as stream:
                    stream.write(path.read_bytes())
