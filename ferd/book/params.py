"""Chapter parameters: what each chapter's papermill `parameters` cell declares, and overrides of them for a run
of the book runner, validated before any chapter executes.

    ferd book --only 06 --param seeds=[0,1]              # one chapter, two seeds
    ferd book --params notebooks/one_seed.yaml           # every chapter at one seed (a cheaper book)

An override is `{chapter: {name: value}}`, where chapter is a number ("06"), a stem ("06_main_table") or "*"
(every executed chapter that declares the name). A name a chapter does not declare, or a chapter the book does not
have, is an error naming what is allowed: a typo must not run hours of the default instead.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Mapping, Sequence

from ferd.errors import ConfigError

RUNNER_PARAMETERS = ("profile", "device")  # set by the runner's own options, never by an override
EVERY = "*"


def chapter_number(name: str | int) -> str:
    """'06', 6 and '06_main_table' -> '06': how a chapter is named on the command line."""
    text = str(name).strip()
    return f"{int(text):02d}" if text.isdigit() else text.split("_")[0]


def chapter_parameters(source: Path) -> dict[str, Any]:
    """The assignments of a chapter's one cell tagged `parameters` (name -> default, read as literals); {} when
    it has none. Two such cells are an error: papermill would inject after the first only."""
    import jupytext

    cells = [c for c in jupytext.read(source).cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) > 1:
        raise ConfigError(f"cells tagged 'parameters' in {Path(source).name}", len(cells), "at most one")
    declared: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body if cells else []:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:  # seed: int = 0
            targets = [node.target]
        else:
            continue
        declared.update({t.id: ast.literal_eval(node.value) for t in targets if isinstance(t, ast.Name)})
    return declared


def parse_param(spec: str) -> tuple[str, str, Any]:
    """'06:seeds=[0, 1]' -> ('06', 'seeds', [0, 1]); without 'NN:' the chapter is '*'. The value is YAML."""
    import yaml

    head, sep, value = spec.partition("=")
    if not sep or not head.strip():
        raise ConfigError("--param", spec, "[CHAPTER:]NAME=VALUE, e.g. 06:seeds=[0,1] or seeds=[0]")
    chapter, _, name = head.rpartition(":")
    return (chapter.strip() or EVERY), name.strip(), yaml.safe_load(value)


def merge_params(specs: Sequence[str] = (), files: Sequence[str | Path] = ()) -> dict[str, dict[str, Any]]:
    """One override mapping from YAML files ({chapter: {name: value}}) and `--param` specs (later ones win)."""
    import yaml

    merged: dict[str, dict[str, Any]] = {}
    for path in files:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise ConfigError("--params", str(path), "a YAML mapping {chapter: {name: value}}")
        for chapter, values in data.items():
            merged.setdefault(str(chapter), {}).update(values)
    for spec in specs:
        chapter, name, value = parse_param(spec)
        merged.setdefault(chapter, {})[name] = value
    return merged


def resolve_params(sources: Sequence[Path], overrides: Mapping[str, Mapping[str, Any]],
                   book: Sequence[Path] | None = None) -> dict[Path, dict[str, Any]]:
    """The overrides of each chapter in `sources` (the chapters executed now), checked against the parameters the
    chapters declare. A chapter of the `book` (default: `sources`) that is not executed now keeps its overrides
    unused (a file of overrides for the whole book serves `--only` too); a chapter the book lacks is an error."""
    book = list(book or sources)
    declared = {source: chapter_parameters(source) for source in book}
    resolved: dict[Path, dict[str, Any]] = {source: {} for source in sources}
    for chapter, values in overrides.items():
        for name in values:
            if name in RUNNER_PARAMETERS:
                raise ConfigError("parameter", name, f"a chapter's own parameter; set {name} with --{name}")
        if chapter == EVERY:
            for name, value in values.items():
                takers = [s for s in sources if name in declared[s]]
                if not takers:
                    known = sorted({n for d in declared.values() for n in d} - set(RUNNER_PARAMETERS))
                    raise ConfigError("parameter", name, "a parameter of an executed chapter: " + ", ".join(known))
                for source in takers:
                    resolved[source][name] = value
            continue
        match = [s for s in book if s.name.startswith(chapter_number(chapter) + "_")]
        if not match:
            raise ConfigError("chapter", chapter, "a chapter of the book: " + ", ".join(s.stem for s in book))
        for source in match:
            for name, value in values.items():
                if name not in declared[source]:
                    allowed = [n for n in declared[source] if n not in RUNNER_PARAMETERS]
                    raise ConfigError(f"parameter of {source.stem}", name, allowed)
                if source in resolved:
                    resolved[source][name] = value
    return resolved
