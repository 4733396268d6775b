"""ferd.book.tables: the paper-numbers file (spec baselines.md 11.1), number formats, side-by-side tables."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml

from ferd.book import tables
from ferd.book.tables import (
    PAPER_NUMBERS,
    REQUIRED,
    fmt_nsd,
    fmt_paper,
    fmt_pct,
    load_paper_numbers,
    paper_value,
    provenance_caption,
    save_results,
    side_by_side,
)
from ferd.errors import ConfigError


def _raw_records() -> list[dict]:
    return yaml.safe_load(PAPER_NUMBERS.read_text(encoding="utf-8"))["records"]


def test_yaml_loads_with_every_required_field():
    records = _raw_records()
    assert len(records) > 150
    for r in records:
        assert set(REQUIRED) <= set(r), r.get("key")
        assert r["confidence"] in tables.CONFIDENCE, r["key"]
        for field in REQUIRED:
            if field != "value":
                assert isinstance(r[field], str) and r[field].strip(), (r["key"], field)
        assert r["value"] is None or isinstance(r["value"], (int, float)), r["key"]
        if r["metric"] == "note":
            assert r["value"] is None and r.get("note"), r["key"]
    df = load_paper_numbers()
    assert list(df.columns) == list(tables.FIELDS) and len(df) == len(records)


def test_no_duplicate_keys_and_duplicates_are_refused(tmp_path):
    keys = [r["key"] for r in _raw_records()]
    assert len(keys) == len(set(keys))
    records = _raw_records()
    bad = tmp_path / "dup.yaml"
    bad.write_text(yaml.safe_dump({"records": records + [records[0]]}))
    with pytest.raises(ConfigError, match="key"):
        load_paper_numbers(bad)


def test_table1_rn18_ferd_aa_numbers():
    assert paper_value("t1.c10.rn18.ferd.aa.avg") == 40.12
    assert paper_value("t1.c10.rn18.ferd.aa.worst") == 20.80
    assert paper_value("t1.c10.rn18.ferd.aa.nsd") == 0.325
    assert paper_value("t1.c10.rn18.dfhl.aa.nsd") == 0.351
    assert paper_value("t1.c10.mnv2.ferd.pgd.worst") == 20.80
    assert paper_value("t1.c10.mnv2.best.pgd.worst") == 15.10  # footnote 1: not 14.20
    df = load_paper_numbers().set_index("key")
    assert "14.20" in df.loc["t1.c10.mnv2.best.pgd.worst", "note"]
    assert "Q11" in df.loc["t1.c10.rn18.ferd.aa.avg", "note"]


def test_every_section_is_transcribed():
    df = load_paper_numbers().set_index("key")
    expected = {"gain.c10.mnv2.fgsm.worst": 11.3, "gain.c10.mnv2.any.nsd": -0.077, "gain.c10.rn18.aa.avg": 3.73,
                "abl.c10.rn18.ferd.aa.avg": 42.24, "abl.c10.rn18.ferd_no_reweight.aa.worst": 17.20,
                "abl.c10.rn18.ferd_no_fae_utae.clean.avg": 77.48, "tt.c10.rn18.gain.aa.avg": 2.08,
                "cw.c10.deer.weight": 0.314, "cw.c10.minmax.max_weight": 0.3077,
                "dfhl_rs.c100.rn18.aa.avg": 19.30, "ctx.dfkd.c10.rn18.cmi.clean.avg": 94.84,
                "rb.c10.zhang2019theoretically.aa.avg": 53.08, "rb.c100.rade2021helper_r18_ddpm.clean.avg": 61.50,
                "lethesec.c10.rn18.trades.cw100.avg": 48.18}
    for key, value in expected.items():
        assert df.loc[key, "value"] == pytest.approx(value), key
    assert "Q11" in df.loc["abl.c10.rn18.ferd.aa.avg", "note"]  # the ablation's "AA" footnote
    assert math.isnan(df.loc["gamma.claim.best_range", "value"]) and df.loc["gamma.claim.best_range", "metric"] == "note"
    t2 = df[df.index.str.startswith("t2.")]
    assert len(t2) > 0 and t2["value"].isna().all()  # Table 2: nothing recovered
    assert df.loc["tt.c10.rn18.ferd.aa.avg", "value"] != df.loc["tt.c10.rn18.ferd.aa.avg", "value"]  # NaN


def test_unknown_key_raises_with_close_matches():
    with pytest.raises(ConfigError, match="t1.c10.rn18.ferd.aa.avg"):
        paper_value("t1.c10.rn18.ferd.aa.avgg")


def test_formats():
    assert fmt_paper(None) == "n/r" and fmt_paper(float("nan"), "nsd") == "n/r"
    assert fmt_paper(paper_value("t1.c10.rn18.ferd.fgsm.avg")) == "n/r"
    assert fmt_paper(20.8) == "20.80" and fmt_paper(0.325, "nsd") == "0.325" and fmt_paper(11.3, "delta") == "+11.3"
    assert fmt_pct(0.40123) == "40.12" and fmt_pct(1.0) == "100.00" and fmt_pct(-0.0373) == "-3.73"
    assert fmt_nsd(0.32512) == "0.325"
    with pytest.raises(ConfigError, match="fraction"):
        fmt_pct(40.12)  # a percentage passed as our value
    with pytest.raises(ConfigError, match="kind"):
        fmt_paper(1.0, "percent")


def _summary() -> pd.DataFrame:
    return pd.DataFrame({"preset": ["ferd", "ferd", "dfhl", "ferd", "ferd"],
                         "attack": ["clean", "aa", "aa", "clean", "aa"], "seed": [0, 0, 0, 1, 1],
                         "avg": [0.8, 0.4, 0.35, 0.82, 0.42], "worst": [0.6, 0.2, 0.1, 0.6, 0.2],
                         "nsd": [0.1, 0.3, 0.4, 0.1, 0.3]})


def test_side_by_side_template_puts_paper_value_beside_ours():
    t = side_by_side(_summary(), "t1.c10.rn18.{preset}.{attack}.{metric}", rows="preset", cols="attack")
    assert t.loc["ferd", ("AA", "Worst")] == "20.00 ± 0.00 (20.80)"
    assert t.loc["ferd", ("AA", "NSD")] == "0.300 ± 0.000 (0.325)"
    assert t.loc["ferd", ("Clean", "Avg")] == "81.00 ± 1.41 (n/r)"
    assert t.loc["dfhl", ("AA", "Avg")] == "35.00 (36.39)"
    assert t.loc["dfhl", ("Clean", "Worst")] == "— (58.60)"  # we did not run it; the paper has it
    assert all(isinstance(v, str) for v in t.to_numpy().ravel())


def test_side_by_side_mapping_and_missing_paper():
    s = _summary()[lambda d: d.preset == "ferd"]
    t = side_by_side(s, {("aa", "avg"): "t1.c10.rn18.ferd.aa.avg", ("clean", "avg"): None}, rows="attack",
                     cols=None, metrics=("avg",))
    assert t.loc["AA", "Avg"] == "41.00 ± 1.41 (40.12)" and t.loc["Clean", "Avg"].endswith("(n/r)")
    assert side_by_side(s, None, rows="attack", cols=None).loc["AA", "NSD"].endswith("(n/r)")
    with pytest.raises(ConfigError, match="paper key"):
        side_by_side(s, {("aa", "avg"): "t1.no.such.key"}, rows="attack", cols=None, metrics=("avg",))
    with pytest.raises(ConfigError, match="columns"):
        side_by_side(s.drop(columns="nsd"), None, rows="attack", cols=None)


def test_provenance_caption_names_everything():
    line = provenance_caption("cpu", "fashion_mnist", [0, 1, 1], ["abc123", "def456"], commit="1a2b3c4")
    for part in ("profile cpu", "Fashion-MNIST", "seeds 0, 1", "abc123", "def456", "1a2b3c4", "orientation only",
                 "n/r"):
        assert part in line, part
    assert "\n" not in line
    paper = provenance_caption("paper", "cifar10", 0, "abc", commit="x")
    assert "seed 0" in paper and "orientation" not in paper


def test_save_results_writes_under_ferd_output(tmp_path, monkeypatch):
    monkeypatch.setenv("FERD_OUTPUT", str(tmp_path))
    df = pd.DataFrame({"a": [1, 2]})
    path = save_results(df, "chXX_test", "smoke")
    assert path == tmp_path / "results" / "chXX_test.csv"
    assert pd.read_csv(path).equals(df)
    assert not path.with_name(path.name + ".sha256").exists()
    assert save_results(df, "chXX_test", "paper") == tmp_path / "results" / "paper" / "chXX_test.csv"


def test_precision_follows_the_number_of_images():
    import pandas as pd

    assert [tables.resolution_digits(n) for n in (50, 100, 1000, 10000, None)] == [0, 0, 1, 2, 2]
    rows = pd.DataFrame({"preset": ["ferd", "ferd"], "attack": ["pgd", "aa"], "avg": [0.54071, 0.4215],
                         "worst": [0.049, 0.04], "nsd": [0.4234, 0.5], "n_per_class": [1000, 50],
                         "n_total": [10000, 500]})
    t = tables.side_by_side(rows, None, rows="preset", cols="attack", metrics=("avg", "worst"), cell="{ours}")
    assert t.loc["ferd", ("PGD", "Avg")] == "54.07" and t.loc["ferd", ("PGD", "Worst")] == "4.9"
    assert t.loc["ferd", ("AA", "Avg")] == "42.1" and t.loc["ferd", ("AA", "Worst")] == "4"


def test_float_columns_get_the_decimals_their_values_need():
    from ferd.book.tables import column_decimals

    assert column_decimals(pd.Series([0.1152, 0.113, 0.1129])) == 4  # shown 0.1152, 0.1130, 0.1129
    assert column_decimals(pd.Series([75.2, 74.16])) == 2
    assert column_decimals(pd.Series([1.0, 2.0])) == 0
    assert column_decimals(pd.Series([1 / 3])) == 4, "a long tail is cut at the most"
    assert column_decimals(pd.Series([float("nan"), 0.5])) == 1, "a missing value does not count"


def test_plural():
    from ferd.book.tables import plural

    assert (plural(1, "run"), plural(3, "run"), plural(0, "seed")) == ("1 run", "3 runs", "0 seeds")


def test_frame_html_puts_a_named_index_in_the_header_row_and_hides_a_range_index():
    """The book's tables have one header row: a named index becomes the first column; 0, 1, 2, ... is hidden."""
    from ferd.book.tables import frame_html
    named = pd.DataFrame({"Avg (%)": [70.25, 68.5]}, index=pd.Index(["FERD", "DFRD"], name="method"))
    html = frame_html(named)
    assert html.count("<tr>") == 3, html  # one header row and two body rows
    assert ">method<" in html and ">70.25<" in html and ">68.50<" in html
    plain = frame_html(pd.DataFrame({"gamma": [0.5, 1.0], "Worst (%)": [12.0, float("nan")]}))
    assert "row_heading" not in plain and ">1.0<" in plain and ">–<" in plain


def test_frame_html_escapes_text_so_a_message_keeps_its_angle_brackets():
    """Chapter 9's data status printed "set FERD_DATA=, or ..." where the message said "set <root>/...": the
    browser took "<root>" for a tag."""
    from ferd.book.tables import frame_html
    html = frame_html(pd.DataFrame({"status": ["missing: put it under <root>/cifar-10-batches-py"]}))
    assert "&lt;root&gt;/cifar-10-batches-py" in html and "<root>" not in html
