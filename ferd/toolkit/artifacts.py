"""Artifact store: checkpoints and results keyed by config hash, written atomically, checksummed, locked.

Layout: `<root>/<kind>/<key>/<name>`, with `<name>.sha256` beside every file. `root` is `$FERD_ARTIFACTS` or
`./artifacts`. A file is only trusted when its checksum matches: an interrupted write (temporary file, then
`os.replace`) never leaves a file that looks complete, and a truncated or corrupted one is reported by name
and recomputed rather than loaded. Two processes asking for the same artifact serialise on a file lock; the
second finds the first one's result and reuses it.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import torch
from filelock import FileLock

from ferd.errors import CheckpointError

T = TypeVar("T")


def default_root() -> Path:
    return Path(os.environ.get("FERD_ARTIFACTS", "artifacts"))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to `path` through a temporary file in the same folder, then rename; record the checksum."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmps: list[tuple[str, Path]] = []
    try:  # both temporary files first, then two renames back to back: the window between them is microseconds
        for target, payload in ((path, data), (_sum_path(path), _sha256(data).encode())):
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{target.name}.", suffix=".tmp")
            tmps.append((tmp, target))
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(*tmps[0])
        os.replace(*tmps[1])  # the kill tests inject faults around these renames (tests/reliability/faults)
    except BaseException:
        for tmp, _ in tmps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


def _sum_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def read_verified(path: Path) -> bytes:
    """Return the file's bytes if its recorded checksum matches, else raise CheckpointError naming it."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    data = path.read_bytes()
    sp = _sum_path(path)
    if not sp.exists():
        raise CheckpointError(f"{path} has no checksum file {sp.name}; it was not written by ferd or is incomplete")
    if sp.read_text().strip() != _sha256(data):
        raise CheckpointError(f"{path} is corrupt or truncated (checksum mismatch with {sp.name})")
    return data


def is_valid(path: Path) -> bool:
    try:
        read_verified(path)
        return True
    except CheckpointError:
        return False


def save_torch(path: Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_atomic(path, buf.getvalue())


def load_torch(path: Path, map_location: str | torch.device = "cpu") -> Any:
    return torch.load(io.BytesIO(read_verified(path)), map_location=map_location, weights_only=False)


def save_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default).encode())


def load_json(path: Path) -> Any:
    return json.loads(read_verified(path))


def _json_default(o: Any) -> Any:
    if isinstance(o, (set, tuple)):
        return list(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")


def save_frame(path: Path, df: Any) -> None:
    """Save a pandas DataFrame as CSV (atomically, checksummed)."""
    write_atomic(path, df.to_csv(index=False).encode())


def load_frame(path: Path) -> Any:
    import pandas as pd

    return pd.read_csv(io.BytesIO(read_verified(path)))


@contextlib.contextmanager
def locked(path: Path, timeout: float = -1) -> Iterator[None]:
    """Hold an exclusive lock named after `path` (another process asking for it waits)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=timeout):
        yield


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files that killed writers left in `folder` (a checkpoint's can be large).

    Call only while holding the lock that every writer of that folder holds (a run's or a teacher's folder).
    """
    stale = sorted(Path(folder).glob(".*.tmp"))
    for p in stale:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    return stale


def get_or_compute(path: Path, compute: Callable[[], T], save: Callable[[Path, T], None],
                   load: Callable[[Path], T]) -> T:
    """Load `path` if it holds a verified artifact, else compute, save and return it (under a lock).

    A present but corrupt file is reported with a warning that names it, then recomputed.
    """
    path = Path(path)
    with locked(path):
        if path.exists():
            try:
                return load(path)
            except CheckpointError as err:
                warnings.warn(f"recomputing: {err}", stacklevel=2)
        value = compute()
        save(path, value)
        return value


def provenance(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """What made an artifact: config, seed, library version, git commit, time."""
    from ferd import __version__

    return {"config": config, "seed": (config or {}).get("seed"), "ferd_version": __version__,
            "git_commit": git_commit(), "torch_version": torch.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


# Folders of the repository that hold what the package and the book write (tables, figures, executed chapters and
# their pages, benchmark records): regenerating them while a chapter runs must not mark the code "+dirty".
OUTPUT_FOLDERS = ("results", "figures", "book", "benchmarks/results")


def git_commit(where: str | Path | None = None) -> str:
    """The HEAD commit of the repository holding `where` (default: this package), with '+dirty' if a tracked file
    outside `OUTPUT_FOLDERS` has uncommitted changes (the code or configuration behind a result), or 'unknown'."""
    here = Path(where).resolve() if where else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                *(f":(top,exclude){folder}" for folder in OUTPUT_FOLDERS)], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("+dirty" if dirty else "")) if sha else "unknown"


class ArtifactStore:
    """Paths and helpers for one artifact root: `store.path(kind, key, name)`."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()

    def dir(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def path(self, kind: str, key: str, name: str) -> Path:
        return self.dir(kind, key) / name

    def __repr__(self) -> str:
        return f"ArtifactStore(root={str(self.root)!r})"
