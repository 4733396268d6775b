"""The chapter notebooks (notebooks/NN_name.py): static checks of the book conventions, and opt-in execution.

The static checks read the jupytext sources only (fast) and catch what would otherwise fail late, in
`jupyter-book build -W -n`: a glue key used twice in the book or never defined, an equation label used twice
or referenced but missing, a parameters cell that is not the first code cell. The execution test runs one
chapter at the `smoke` profile with papermill, all chapters sharing one temporary artifact store (`-m slow`; the whole book is
built by tests/test_book.py).

    pytest tests/test_notebooks.py              # static checks
    pytest tests/test_notebooks.py -m slow      # also execute every chapter at smoke
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from ferd.book.runner import ROOT, chapters

GLUE_LITERAL = re.compile(r"""\bglue\(\s*["']([^"'{}]+)["']""")
GLUE_DYNAMIC = re.compile(r"""\bglue\(\s*f["']([^"'{]*)\{""")
GLUE_REF = re.compile(r"\{glue(?::\w+)?\}`([^`]+)`")
EQ_LABEL = re.compile(r"^\$\$\s*\(([^)]+)\)\s*$|^:label:\s*(\S+)\s*$", re.M)
EQ_REF = re.compile(r"\{eq\}`([^`]+)`")
SOURCES = chapters(ROOT)


def _cells(source: Path):
    import jupytext

    return jupytext.read(source).cells


def _text(source: Path, kind: str) -> str:
    return "\n".join(c.source for c in _cells(source) if c.cell_type == kind)


def _number(source: Path) -> str:
    return source.name[:2]


def _ref_key(ref: str) -> str:
    """`{glue:text}` content 'key:.2f' or 'doc::key' -> key."""
    ref = ref.split("::", 1)[-1]
    return ref.rsplit(":", 1)[0] if re.search(r":[^:]*[a-zA-Z%]$", ref) and ":" in ref else ref


pytestmark = pytest.mark.skipif(not SOURCES, reason="no chapter notebooks yet")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_parameters_cell_comes_first_and_configs_next(source):
    code = [c for c in _cells(source) if c.cell_type == "code"]
    assert code and "parameters" in code[0].metadata.get("tags", []), \
        f"{source.name}: the first code cell must be the one tagged 'parameters'"
    params = code[0].source
    for name in ("profile", "seed", "device"):
        assert re.search(rf"^{name}\s*(:[^=]+)?=", params, re.M), f"{source.name}: parameter {name!r} missing"
    assert re.search(r"""^profile\s*=\s*["']cpu["']""", params, re.M), f"{source.name}: default profile is 'cpu'"
    for line in params.splitlines():
        if re.match(r"^\w+\s*(:[^=]+)?=", line):
            assert "#" in line, f"{source.name}: parameter line without a comment: {line!r}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_glue_references_are_defined_in_the_chapter(source):
    code = _text(source, "code")
    defined = set(GLUE_LITERAL.findall(code))
    prefixes = GLUE_DYNAMIC.findall(code)
    missing = [k for k in map(_ref_key, GLUE_REF.findall(_text(source, "markdown")))
               if k not in defined and not any(p and k.startswith(p) for p in prefixes)]
    assert not missing, f"{source.name}: glue keys referenced but never glued: {sorted(set(missing))}"


def test_glue_keys_are_unique_and_prefixed():
    owner: dict[str, str] = {}
    problems = []
    for source in SOURCES:
        keys = GLUE_LITERAL.findall(_text(source, "code"))
        for key in set(keys):
            if not key.startswith(f"ch{_number(source)}_"):
                problems.append(f"{source.name}: glue key {key!r} lacks the prefix ch{_number(source)}_")
            if key in owner and owner[key] != source.name:
                problems.append(f"glue key {key!r} in both {owner[key]} and {source.name}")
            owner[key] = source.name
    assert not problems, "\n".join(problems)


def test_equation_labels_are_unique_and_references_resolve():
    labels: dict[str, str] = {}
    refs: list[tuple[str, str]] = []
    problems = []
    for source in SOURCES:
        md = _text(source, "markdown")
        for a, b in EQ_LABEL.findall(md):
            label = a or b
            if label in labels:
                problems.append(f"equation label {label!r} in both {labels[label]} and {source.name}")
            labels[label] = source.name
        refs += [(source.name, r) for r in EQ_REF.findall(md)]
    problems += [f"{name}: {{eq}}`{r}` has no labelled equation in the book" for name, r in refs if r not in labels]
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    """One artifact store for all chapters, as in `ferd book`: later chapters reuse earlier runs."""
    return tmp_path_factory.mktemp("artifacts")


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_chapter_executes_at_smoke(source, tmp_path, monkeypatch, shared_store):
    import jupytext
    import papermill

    from ferd.book.runner import ensure_kernel

    ensure_kernel()
    monkeypatch.setenv("FERD_ARTIFACTS", str(shared_store))
    monkeypatch.setenv("FERD_OUTPUT", str(tmp_path / "output"))
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    start = time.perf_counter()
    out = papermill.execute_notebook(nb, str(tmp_path / f"{source.stem}.ipynb"), parameters={"profile": "smoke"},
                                     kernel_name="python3", cwd=str(ROOT), progress_bar=False)
    seconds = time.perf_counter() - start
    errors = [o for c in out.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    figures = list((tmp_path / "output" / "figures").glob("*.png"))
    assert figures, f"{source.name} saved no figure"
    print(f"{source.stem}: {seconds:.1f} s at smoke")
