"""Chapter parameter overrides for the book runner (`ferd.book.params`): they reach papermill as typed values,
and a typo in a chapter or a name fails before anything executes, naming what is allowed."""
from __future__ import annotations

import pytest

from ferd.book.params import chapter_parameters, merge_params, parse_param, resolve_params
from ferd.book.runner import chapters
from ferd.errors import ConfigError

SOURCES = chapters()


def by_stem(stem: str):
    return next(s for s in SOURCES if s.stem == stem)


def test_parameters_cell_is_read_with_its_types():
    declared = chapter_parameters(by_stem("06_main_table"))
    assert declared["profile"] == "cpu" and declared["seeds"] == [0, 1, 2, 3, 4]
    assert all(chapter_parameters(s).get("profile") == "cpu" for s in SOURCES), "every chapter declares profile"


def test_param_specs_parse_yaml_values():
    assert parse_param("06:seeds=[0, 1]") == ("06", "seeds", [0, 1])
    assert parse_param("seed=2") == ("*", "seed", 2)
    assert parse_param("06:students=[fmnist-resnet]") == ("06", "students", ["fmnist-resnet"])
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_param("seeds")


def test_overrides_go_to_the_chapters_that_declare_them():
    resolved = resolve_params(SOURCES, merge_params(["seeds=[0]", "06:aa_seed_per_class=10"]))
    takers = {s.stem for s, v in resolved.items() if v.get("seeds") == [0]}
    assert takers == {s.stem for s in SOURCES if "seeds" in chapter_parameters(s)} and "06_main_table" in takers
    assert resolved[by_stem("06_main_table")]["aa_seed_per_class"] == 10
    assert resolved[by_stem("01_teacher")] == {}


@pytest.mark.parametrize("spec, match", [
    ("06:sedes=[0]", "sedes"),          # a name chapter 6 does not declare
    ("nonexistent=1", "nonexistent"),   # a name no executed chapter declares
    ("42:seeds=[0]", "42"),             # a chapter the book lacks
    ("profile=paper", "--profile"),     # the runner's own options
])
def test_bad_overrides_fail_before_running(spec, match):
    with pytest.raises(ConfigError, match=match):
        resolve_params(SOURCES, merge_params([spec]))


def test_one_seed_file_names_only_declared_parameters():
    from ferd.book.paths import ROOT

    overrides = merge_params(files=[ROOT / "notebooks" / "one_seed.yaml"])
    resolved = resolve_params(SOURCES, overrides)
    assert resolved[by_stem("06_main_table")]["seeds"] == [0]
    assert all(len(v) for k, v in overrides.items()), "each chapter entry overrides something"


def test_a_whole_book_file_serves_one_chapter():
    """`--only 03 --params notebooks/one_seed.yaml`: the other chapters' entries are checked, then left unused."""
    from ferd.book.paths import ROOT

    ch03 = by_stem("03_reweighting")
    resolved = resolve_params([ch03], merge_params(files=[ROOT / "notebooks" / "one_seed.yaml"]), book=SOURCES)
    assert list(resolved) == [ch03] and resolved[ch03]["probe_seeds"] == [0]
    with pytest.raises(ConfigError, match="sedes"):
        resolve_params([ch03], merge_params(["06:sedes=[0]"]), book=SOURCES)
