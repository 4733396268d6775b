"""The shared plotting helpers of the results chapters (ferd.book.plots): they draw what they are given and save it."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ferd.book import diagram, plots


def test_preset_label_names_approximations_and_falls_back():
    assert plots.preset_label("dfard") == "DFARD (approx.)"
    assert plots.preset_label("derd") == "DERD (approx.)"
    assert plots.preset_label("ferd") == "FERD"
    assert plots.preset_label("my_preset") == "my_preset"


def test_grouped_bars_one_bar_per_cell_in_percent(tmp_path):
    data = pd.DataFrame({"PGD": [0.1, 0.2, np.nan], "AA": [0.05, 0.15, 0.25]}, index=["a", "b", "c"])
    fig, ax = plots.plt.subplots()
    plots.grouped_bars(ax, data, "acc (%)", annotate=True)
    heights = sorted(round(p.get_height(), 6) for p in ax.patches if not np.isnan(p.get_height()))
    assert heights == [5.0, 10.0, 15.0, 20.0, 25.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    paths = plots.save_figure(fig, "bars", folder=tmp_path)
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    pdf = next(p for p in paths if p.suffix == ".pdf").read_bytes()
    assert b"/CreationDate" not in pdf, "no date in the PDF: a re-run on the same numbers leaves git clean"
    plots.plt.close(fig)


def test_grouped_bars_raw_values_and_negative_deltas():
    data = pd.DataFrame({"Worst": [-3.6, 1.0]}, index=["w/o reweighting", "w/o FAEs"])
    fig, ax = plots.plt.subplots()
    plots.grouped_bars(ax, data, percent=False)
    assert sorted(round(p.get_height(), 6) for p in ax.patches) == [-3.6, 1.0]
    plots.plt.close(fig)


def test_seed_strip_draws_every_seed_and_a_mean_per_cell():
    rows = [{"label": lab, "method": m, "seed": s, "value": v}
            for lab in ("PGD Worst", "CW Worst") for m in ("FERD", "plain DFRD") for s, v in enumerate((0.1, 0.2, 0.3))]
    fig, ax = plots.plt.subplots()
    plots.seed_strip(ax, pd.DataFrame(rows), "label", "value", "method", order=["PGD Worst", "CW Worst"],
                     hue_order=["plain DFRD", "FERD"])
    dots = sum(len(c.get_offsets()) for c in ax.collections)
    assert dots >= 12  # 2 labels x 2 methods x 3 seeds (plus the mean markers)
    means = [line for line in ax.lines if len(line.get_ydata()) and np.isclose(np.nanmean(line.get_ydata()), 20.0)]
    assert means, "the mean (20 %) of the three seeds is drawn"
    plots.plt.close(fig)

def test_paired_intervals_draws_each_interval_in_its_verdict_colour_first_row_on_top():
    from ferd.book.verdicts import paired_table

    values = pd.DataFrame([{"method": m, "seed": s, "worst": w, "avg": a}
                           for s in range(4) for m, w, a in (("ferd", 10 + s, 50 + 0.1 * s),
                                                              ("plain", 5 + 0.5 * s, 50 + 0.2 * (s % 2)))])
    rows = paired_table(values, "ferd", "plain", ["worst", "avg"])
    assert list(rows["verdict"]) == ["supported", "inconclusive"]
    fig, ax = plots.plt.subplots()
    plots.paired_intervals(ax, rows.assign(name=["Worst", "Avg"]), "name", "FERD − plain (points)", step=1.0)
    bars = [line for line in ax.lines if len(line.get_xdata()) == 2 and line.get_linestyle() == "-"
            and not np.allclose(line.get_xdata(), 0.0)]
    assert len(bars) == 2
    worst_bar = next(line for line in bars if line.get_ydata()[0] == 1)  # the first row is drawn on top (y = 1)
    assert np.allclose(worst_bar.get_xdata(), rows.loc[0, ["ci_low", "ci_high"]].to_numpy(float))
    assert worst_bar.get_color() == plots.VERDICT_COLORS["supported"]
    ticks = {float(y): t.get_text() for y, t in zip(ax.get_yticks(), ax.get_yticklabels())}
    assert ticks == {1.0: "Worst", 0.0: "Avg"}  # the first row on top
    assert "within one image per class" in [t.get_text() for t in ax.get_legend().get_texts()]
    plots.plt.close(fig)



def test_pipeline_diagram_names_every_part():
    fig = diagram.pipeline_diagram()
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    for word in ("generator", "FAE", "probe", "class weights", "UTAE", "student", "pool", "teacher"):
        assert word in texts, word
    assert len(fig.axes[0].patches) == len(diagram.PIPELINE_ARROWS)
