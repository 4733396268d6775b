"""The package's layers show in its tree, and imports go one way: book -> method -> config -> toolkit.

Every import statement of every module under ferd/ (including imports inside functions) is read from the
source; the test fails on an import that runs upward, and on any import cycle.
"""
from __future__ import annotations

import importlib
import subprocess
import sys

from ferd.toolkit import codeversion

LAYERS = {"ferd.errors": 0, "ferd.toolkit": 1, "ferd.config": 2, "ferd.method": 3, "ferd.book": 4, "ferd.cli": 5,
          "ferd.__main__": 5, "ferd": 5}


def layer(module: str) -> int:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return LAYERS[prefix]
    raise AssertionError(f"{module} is in no layer: add it to a subpackage")


def modules() -> list[str]:
    root = codeversion.PACKAGE_ROOT
    out = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out.append(".".join(("ferd", *parts[:-1])) if parts[-1] == "__init__" else ".".join(("ferd", *parts)))
    return out


def graph() -> dict[str, set[str]]:
    return {m: set(codeversion._imports(codeversion._source_path(m), *codeversion._stamp(m))) - {m}
            for m in modules()}


def test_every_module_is_in_a_layer_and_the_flat_package_is_gone():
    flat = [m for m in modules() if m.count(".") == 1 and m not in LAYERS and not m.endswith("__main__")]
    assert flat == [], f"modules outside the layer subpackages: {flat}"
    for m in modules():
        layer(m)


def test_no_import_runs_upward():
    upward = [f"{m} -> {dep}" for m, deps in graph().items() for dep in deps
              if layer(dep) > layer(m) and not (m == "ferd" or m.startswith("ferd.") and dep.startswith(m + "."))]
    assert upward == [], "imports that run upward:\n" + "\n".join(upward)


def test_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(g.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep] if dep in path else [node, dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for m in g:
        if m not in state:
            visit(m, [m])
    # a package's __init__ re-exporting its children is not a cycle (the children never import the package)
    real = [c for c in cycles if not any(b.startswith(a + ".") for a, b in zip(c, c[1:]) if a != "ferd")]
    assert real == [], "import cycles: " + "; ".join(" -> ".join(c) for c in real)


def test_importing_ferd_has_no_side_effects():
    """Importing the library sets no thread count and forces no matplotlib backend (only OMP_WAIT_POLICY's
    default, which must precede torch and changes no result)."""
    code = ("import os, torch; n = torch.get_num_threads(); import matplotlib; b = matplotlib.rcParams['backend'];"
            "import ferd, ferd.book.plots, ferd.book.runner, ferd.book.experiments; "
            "assert torch.get_num_threads() == n, (n, torch.get_num_threads()); "
            "assert matplotlib.rcParams['backend'] == b; print('ok')")
    env = {"PATH": "/usr/bin:/bin", "FERD_THREADS": "1", "MPLBACKEND": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_modules_stay_small():
    long = {m: n for m in modules()
            if (n := len(codeversion._source_path(m).read_text().splitlines())) > 400}
    assert long == {}, f"modules past 400 lines: {long}"


def test_subpackages_describe_their_layer():
    for pkg in ("ferd.toolkit", "ferd.config", "ferd.method", "ferd.book"):
        doc = importlib.import_module(pkg).__doc__ or ""
        assert len(doc) > 80, pkg
