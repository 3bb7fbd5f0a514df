"""Output files that survive concurrent runs and kill -9.

Location checks before any work, one exclusive lock per output, unique temporary files
renamed into place, and JSON-lines logs whose torn last line (a write cut by a kill) is
dropped with a warning.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

__all__ = ["OutputBusyError", "OutputLock", "atomic_write", "check_output", "make_folder",
           "probe_folder", "read_jsonl", "write_jsonl"]


class OutputBusyError(ValueError):
    """Another process holds the lock of an output file."""


def check_output(path, flag: str) -> Path:
    """Check before any work that ``path`` can be written; returns it as a Path.

    It must be a non-empty file name in an existing, writable folder, and not a folder itself.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise ValueError(f"expected a file name for {flag}, got {str(path)!r}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"expected a file for {flag}, got the folder {path}")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise ValueError(f"cannot write {flag} {path}: the folder {parent} {what}; create it "
                         "or choose another path")
    probe_folder(parent, flag, path)
    return path


def probe_folder(folder: Path, flag: str, path) -> None:
    """Create and remove a file in ``folder``: refuse before any work a folder that takes none.

    The one test of writability that also holds for root, read-only mounts and pseudo file
    systems (``os.access`` says yes to root everywhere).

    Raises:
        ValueError: naming ``flag`` and ``path`` when the folder takes no file.
    """
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{Path(path).name}.", suffix=".probe")
    except OSError as err:
        raise ValueError(f"cannot write {flag} {path}: the folder {folder} is not writable "
                         f"({err.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def make_folder(folder, flag: str) -> Path:
    """``mkdir -p folder``, with a one-line error naming ``flag`` when it cannot be created."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the folder {folder} for {flag}: {err.strerror}; "
                         "choose another path") from None
    return folder


def _temp(path: Path) -> tuple[int, str]:
    """A unique temporary file next to ``path``, with the mode a new file would get.

    That is 0666 less the umask: mkstemp makes the file readable by its owner only, and the
    renamed output (a new file, or one replacing an existing file) would keep that mode.
    Setting it is best effort.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    if hasattr(os, "fchmod"):
        try:
            os.fchmod(fd, 0o666 & ~_umask())
        except OSError:  # some network and FUSE mounts refuse it: keep mkstemp's mode
            pass
    return fd, tmp


def _umask() -> int:
    """The process's umask, read from /proc where it can be (no set-and-restore race)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def atomic_write(path, write) -> None:
    """Write ``path`` atomically through ``write(binary file)``.

    The data go to a unique temporary file of the same folder, flushed to disk, then renamed
    over ``path``: readers see the old or the new file, never a part.
    """
    path = Path(path)
    fd, tmp = _temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class OutputLock:
    """Exclusive locks (``<file>.lock``, ``flock``) on output files for one run.

    A second run asking for a locked output is refused with `OutputBusyError`; a killed
    run's locks vanish with its process. Temporary files left by a killed writer are removed
    once the lock is held.
    """

    def __init__(self, paths: dict):
        self.paths = {flag: Path(p) for flag, p in paths.items() if p}
        self._held: list[tuple[int, Path]] = []

    def __enter__(self) -> OutputLock:
        try:
            for flag, path in self.paths.items():
                if all(path.resolve() != held.with_suffix("").resolve()
                       for _, held in self._held):
                    self._acquire(flag, path)
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _acquire(self, flag: str, path: Path) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - no flock on this platform
            return
        lock = path.with_name(path.name + ".lock")
        for _ in range(10):
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise OutputBusyError(
                    f"{flag} {path} is being written by another esso-ref run (pid {owner}); "
                    "wait for it to finish or choose another path") from None
            if os.path.exists(lock) and os.stat(lock).st_ino == os.fstat(fd).st_ino:
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
                self._held.append((fd, lock))
                for stale in path.parent.glob(f".{path.name}.*.tmp"):
                    stale.unlink(missing_ok=True)
                return
            os.close(fd)  # the lock file was replaced between open and flock: retry
        raise OutputBusyError(f"could not lock {flag} {path}: its lock file keeps changing")

    def release(self) -> None:
        """Remove and unlock every held lock file."""
        while self._held:
            fd, lock = self._held.pop()
            lock.unlink(missing_ok=True)
            os.close(fd)


def read_jsonl(path, what: str = "log") -> tuple[list[dict], bool]:
    """Rows of a JSON-lines file and whether its torn last line was dropped (with a warning).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line other than the last is not a JSON object (names file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected a {what} file at {path}, found none")
    data = path.read_bytes()
    lines = data.split(b"\n")
    rows, torn = [], False
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as err:
            if n == len(lines) and not data.endswith(b"\n"):
                warnings.warn(f"{path}: ignoring its torn last line {n} (an interrupted write)",
                              stacklevel=2)
                torn = True
                continue
            raise ValueError(f"expected one JSON object per line in {what} {path}, got "
                             f"{str(err).split(':')[0].lower()} at line {n}") from None
        rows.append(row)
    return rows, torn


def write_jsonl(path, rows: list[dict]) -> None:
    """Replace ``path`` atomically with these rows."""
    atomic_write(path, lambda fh: fh.write(b"".join(json.dumps(r).encode() + b"\n"
                                                   for r in rows)))
