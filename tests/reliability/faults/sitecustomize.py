"""Test-only fault injection for the kill tests, kept out of the library's write path.

Python imports `sitecustomize` at start-up from the path; `tests/reliability/support.py` puts this folder on
PYTHONPATH only for a subprocess started with `FERD_FAULT=<stage>:<file name>:<n>`. The process then SIGKILLs
itself at `stage` of the n-th atomic write (`ferd.toolkit.artifacts.write_atomic`) of that file:

    mid_write        the data's temporary file half written, never renamed into place;
    before_checksum  the data renamed into place, its checksum file not yet.

Both are reached through the module's `os.replace`, the step that publishes a temporary file.
"""
import os

_SPEC = os.environ.get("FERD_FAULT", "")
if _SPEC:
    import signal

    _STAGE, _NAME, _N = _SPEC.rsplit(":", 2)
    _WRITES = [0]

    import ferd.toolkit.artifacts as _artifacts

    class _FaultyOS:
        """`os` for the artifacts module, with a `replace` that dies at the requested point."""

        def __getattr__(self, attr):
            return getattr(os, attr)

        @staticmethod
        def replace(src, dst):
            target = os.path.basename(os.fspath(dst))
            if target == _NAME:
                _WRITES[0] += 1
                if _STAGE == "mid_write" and _WRITES[0] == int(_N):
                    with open(src, "r+b") as fh:
                        fh.truncate(os.path.getsize(src) // 2)
                    os.kill(os.getpid(), signal.SIGKILL)
            elif target == _NAME + ".sha256" and _STAGE == "before_checksum" and _WRITES[0] == int(_N):
                os.kill(os.getpid(), signal.SIGKILL)
            return os.replace(src, dst)

    _artifacts.os = _FaultyOS()
