"""A version of the code a result depends on: a hash of the sources of a module and the ferd modules it imports.

Artifacts are keyed by the configuration that made them *and* by this version, so an edit to a method's code
trains that method again, while a run of another method, whose modules did not change, is reused. The hash is
read from the source files, without importing them (any layer may ask), and is taken over what executes:

- every top-level statement of every module in the import closure (imports inside functions included), as its
  syntax tree, so comments, docstrings and formatting do not count;
- import statements themselves do not count, and the statements are sorted, so moving a function from one
  module to another (a restructuring) keeps the version, while changing its body does not;
- modules that cannot change a number (the artifact store, the error types, the configuration code whose
  values are keyed anyway) are left out of the closure: `NOT_NUMERIC`.

    code_version("ferd.method.distill")  -> '3f2a9c1d0b7e'
"""
from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the `ferd` package folder
NOT_NUMERIC = ("ferd.errors", "ferd.toolkit.artifacts", "ferd.toolkit.codeversion", "ferd.config")


def code_version(*modules: str) -> str:
    """Twelve hex digits naming the code of `modules` and everything they import from ferd (see module doc)."""
    closure = sorted(import_closure(modules))
    parts = sorted(part for name in closure for part in _statements(_source_path(name), *_stamp(name)))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def import_closure(modules: tuple[str, ...] | list[str]) -> set[str]:
    """The ferd modules reachable from `modules` by import statements (anywhere in the file), minus NOT_NUMERIC."""
    seen: set[str] = set()
    todo = [m for m in modules if not _excluded(m)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(m for m in _imports(_source_path(name), *_stamp(name)) if m not in seen and not _excluded(m))
    return seen


def _excluded(name: str) -> bool:
    return any(name == x or name.startswith(x + ".") for x in NOT_NUMERIC)


def _source_path(module: str) -> Path:
    """`ferd.method.fae` -> .../ferd/method/fae.py (or the package's __init__.py)."""
    if module != "ferd" and not module.startswith("ferd."):
        raise ValueError(f"module {module!r} is not part of ferd")
    if module == "ferd":
        return PACKAGE_ROOT / "__init__.py"
    rel = Path(*module.split(".")[1:])
    for path in (PACKAGE_ROOT / rel.with_suffix(".py"), PACKAGE_ROOT / rel / "__init__.py"):
        if path.is_file():
            return path
    raise ValueError(f"module {module!r} has no source file under {PACKAGE_ROOT.name}/")


def _stamp(module: str) -> tuple[int, int]:
    """(mtime, size) of the module's file: the cache below re-reads a file that changed."""
    st = _source_path(module).stat()
    return st.st_mtime_ns, st.st_size


@lru_cache(maxsize=512)
def _tree(path: Path, mtime: int, size: int) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@lru_cache(maxsize=512)
def _imports(path: Path, mtime: int, size: int) -> tuple[str, ...]:
    """Every ferd module named by an import in the file; `from ferd.x import y` also tries `ferd.x.y`."""
    package = ".".join(("ferd", *path.relative_to(PACKAGE_ROOT).with_suffix("").parts))
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0]
    out: list[str] = []
    for node in ast.walk(_tree(path, mtime, size)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("ferd.")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            if base == "ferd" or base.startswith("ferd."):
                if base != "ferd":
                    out.append(base)
                out += [f"{base}.{a.name}" for a in node.names if _exists(f"{base}.{a.name}")]
    return tuple(dict.fromkeys(out))


def _exists(module: str) -> bool:
    try:
        _source_path(module)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=512)
def _statements(path: Path, mtime: int, size: int) -> tuple[str, ...]:
    """The module's top-level statements without imports and docstrings, each as a syntax-tree dump."""
    tree = _tree(path, mtime, size)
    out = []
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)) or _is_docstring(stmt):
            continue
        out.append(ast.dump(_strip(stmt), annotate_fields=False, include_attributes=False))
    return tuple(out)


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _strip(node: ast.AST) -> ast.AST:
    """A copy of `node` without the docstrings of the functions and classes inside it, nor imports in bodies."""
    node = ast.parse(ast.unparse(node)).body[0]  # a fresh copy
    for sub in ast.walk(node):
        body = getattr(sub, "body", None)
        if isinstance(body, list):
            kept = [s for s in body if not (isinstance(s, (ast.Import, ast.ImportFrom))
                                            or (_is_docstring(s) and isinstance(
                                                sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))))]
            sub.body = kept or [ast.Pass()]
    return node
