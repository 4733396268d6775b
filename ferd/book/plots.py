"""One figure style for the whole project; figures saved as PNG (web) and PDF (print) under `figures/`.

Colour-blind-safe palette (seaborn "colorblind"); every plotting helper returns the matplotlib Figure.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import matplotlib.pyplot as plt  # headless machines fall back to Agg by themselves: no backend is forced here
import matplotlib.ticker
import numpy as np
import pandas as pd
import torch

from ferd.method.methods import METHOD_CLASSES
from ferd.toolkit.artifacts import write_atomic
from ferd.toolkit.attacks import attack_label as _attack_label
from ferd.toolkit.images import image_grid, save_image_grid  # noqa: F401 (chapters draw sample grids)

PALETTE = "colorblind"


def set_style() -> None:
    """Apply the book's style (call once per notebook): matplotlib/seaborn for figures, and tables shown without
    a bare 0, 1, 2, ... index (`ferd.book.tables.use_book_display`)."""
    import seaborn as sns

    from ferd.book.tables import use_book_display

    use_book_display()
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "axes.titleweight": "bold", "figure.autolayout": False})


def _label(ax: plt.Axes, xlabel: str | None = None, ylabel: str | None = None, title: str | None = None) -> None:
    """Set the axis labels and title that are given (empty or None: left as they are)."""
    for setter, text in ((ax.set_xlabel, xlabel), (ax.set_ylabel, ylabel), (ax.set_title, title)):
        if text:
            setter(text)


def figure_axes(ax: plt.Axes | None, figsize: tuple[float, float]) -> tuple[plt.Figure, plt.Axes]:
    """The axes to draw on: `ax` and its figure, or a new figure of `figsize`."""
    if ax is None:
        return plt.subplots(figsize=figsize)
    return ax.figure, ax


def save_figure(fig: plt.Figure, name: str, folder: str | Path = "figures",
                formats: Iterable[str] = ("png", "pdf")) -> list[Path]:
    """Save `fig` as `<folder>/<name>.<fmt>` for each format (atomically per file); return the paths. No creation
    date is written into a PDF, so re-executing a chapter on the same numbers leaves its figures byte-identical."""
    import io

    out = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, metadata={"CreationDate": None} if fmt == "pdf" else None)
        path = Path(folder) / f"{name}.{fmt}"
        write_atomic(path, buf.getvalue())
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)  # figures are git-tracked, no sidecar
        out.append(path)
    return out


# ------------------------------------------------------------------------------------------------
# Helpers for the results chapters (6-9): display names, grouped bars, per-seed strips.
# ------------------------------------------------------------------------------------------------
#: Display names of presets in tables and legends; approximations and real-data references say so.
def _preset_labels() -> dict[str, str]:
    """FERD's presets by hand; each baseline's from its class's `label` (one source for "(approx.)")."""
    return {"teacher": "Teacher", "ferd": "FERD", "dfrd_plain": "plain DFRD", "ferd_released": "FERD (released code)",
            "ferd_no_reweight": "w/o reweighting", "ferd_no_fae": "w/o FAEs", "ferd_no_utae": "w/o UTAEs",
            "ferd_no_fae_utae": "w/o FAEs + UTAEs", **{name: cls.label for name, cls in METHOD_CLASSES.items() if name != "ferd"}}


PRESET_LABELS: dict[str, str] = _preset_labels()


def preset_label(preset: str) -> str:
    """The display name of a preset (the preset name itself when it has none)."""
    return PRESET_LABELS.get(preset, preset)


def grouped_bars(ax: plt.Axes, data: pd.DataFrame, ylabel: str = "", percent: bool = True,
                 annotate: bool = False, width: float = 0.8, colors: Iterable[str] | None = None,
                 reference: tuple[float, str] | None = None, title: str | None = None) -> plt.Axes:
    """Grouped bar chart: one group per row of `data`, one bar (and legend entry) per column.

    `data` holds fractions (shown in percent when `percent`) or any numbers; NaN cells leave a gap.
    `reference` = (value, label) draws a dashed line, e.g. the uniform share 1/C. Used for per-class weights and
    predictions (ch. 3-5), worst-class accuracy per method (ch. 6), deltas to full FERD (ch. 7), ch. 8's bars.
    """
    import seaborn as sns

    groups, series = list(data.index), list(data.columns)
    colors = list(colors) if colors is not None else sns.color_palette(PALETTE, len(series))
    x = np.arange(len(groups))
    w = width / max(len(series), 1)
    scale = 100.0 if percent else 1.0
    for i, name in enumerate(series):
        vals = data[name].to_numpy(dtype=float) * scale
        bars = ax.bar(x - width / 2 + (i + 0.5) * w, vals, w, label=str(name), color=colors[i % len(colors)])
        if annotate:
            ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.1f}" for v in vals], fontsize=7,
                         padding=1)
    names = [str(g) for g in groups]
    crowded = len(names) > 4 or sum(len(n) for n in names) > 40  # rotate labels that would overlap
    ax.set_xticks(x, names, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    ax.axhline(0, color="black", linewidth=0.8)
    if reference is not None:
        ax.axhline(reference[0] * scale, color="grey", ls="--", lw=1, label=reference[1])
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return ax


def seed_strip(ax: plt.Axes, data: pd.DataFrame, x: str, y: str, hue: str, percent: bool = True,
               order: list[str] | None = None, hue_order: list[str] | None = None) -> plt.Axes:
    """One dot per seed (jittered strip) and the mean with a +-1 std bar per (x, hue) cell.

    `data` is tidy: one row per (x, hue, seed) with the value in column `y` (a fraction when `percent`).
    """
    import seaborn as sns

    d = data.copy()
    if percent:
        d[y] = d[y] * 100.0
    kw = dict(data=d, x=x, y=y, hue=hue, order=order, hue_order=hue_order, dodge=True, ax=ax)
    sns.stripplot(**kw, alpha=0.55, size=5, jitter=0.15, legend=False)
    sns.pointplot(**kw, errorbar="sd", linestyle="none", markers="D", markersize=6, capsize=0.1,
                  err_kws={"linewidth": 1.2})
    return ax


VERDICT_COLORS = {"supported": "#1b9e77", "not supported": "#d95f02", "inconclusive": "#7f7f7f"}


def paired_intervals(ax: plt.Axes, rows: pd.DataFrame, label: str, xlabel: str,
                     step: float | None = None) -> plt.Axes:
    """A forest plot of paired comparisons: per row of `rows`, the mean difference (dot) and its interval (bar),
    coloured by verdict, against a line at zero; the first row on top.

    `rows` has the columns of `ferd.book.verdicts.paired_table` (`difference`, `ci_low`, `ci_high`, `verdict`)
    and `label`. `step`, when given, shades +-step around zero: the resolution of one image per class, so a reader
    sees which differences are smaller than the metric can resolve on one seed.
    """
    from matplotlib.patches import Patch

    y = np.arange(len(rows))[::-1]
    if step:
        ax.axvspan(-step, step, color="0.9", zorder=0)
    ax.axvline(0.0, color="black", lw=0.8, zorder=1)
    for yi, r in zip(y, rows.itertuples()):
        color = VERDICT_COLORS.get(r.verdict, "black")
        if np.isfinite(r.ci_low) and np.isfinite(r.ci_high):
            ax.plot([r.ci_low, r.ci_high], [yi, yi], color=color, lw=2.0, solid_capstyle="butt", zorder=2)
        ax.plot([r.difference], [yi], "o", color=color, ms=6, zorder=3)
    ax.set_yticks(y, list(rows[label]))
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(xlabel)
    shown = [v for v in VERDICT_COLORS if v in set(rows["verdict"])]
    ax.legend(handles=[Patch(color=VERDICT_COLORS[v], label=v) for v in shown]
              + ([Patch(color="0.9", label="within one image per class")] if step else []),
              fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=4, frameon=False)  # above the rows
    return ax


# ------------------------------------------------------------------------------------------------
# Helpers shared by the book's chapters (per-class bars, heat maps, per-class curves, t-SNE).
# ------------------------------------------------------------------------------------------------
def show(fig: plt.Figure) -> None:
    """Display `fig` in a notebook as a PNG, right here in the cell's output, and close it.

    Works whatever the matplotlib backend (Agg in scripts, inline in a kernel); closing the figure keeps the
    inline backend from showing it a second time. Outside IPython it only closes the figure.
    """
    import io

    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:  # plain Python: nothing to display
        plt.close(fig)
        return
    if get_ipython() is not None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        display(Image(data=buf.getvalue(), format="png"))
    plt.close(fig)


def class_colors(n: int) -> list:
    """`n` distinguishable colours: the colour-blind palette for n <= 10, evenly spaced hues beyond."""
    import seaborn as sns

    return sns.color_palette(PALETTE if n <= 10 else "husl", n)


def per_class_bars(df, hue: str = "attack", value: str = "accuracy", hue_order: Iterable[str] | None = None,
                   ax: plt.Axes | None = None, percent: bool = True, title: str | None = None,
                   ylabel: str | None = None, highlight: int | None = None) -> plt.Figure:
    """Grouped bar chart of a per-class quantity: one group per class, one bar per value of `hue`.

    Args:
        df: tidy frame with columns class_index, class_name, `hue` and `value` (e.g. from
            `ferd.toolkit.evaluate.evaluate`, one row per (hue, class)).
        hue: the column whose values get one bar each (attack, preset, model, ...).
        value: the column plotted (fractions in [0, 1] when `percent`).
        hue_order: order of the bars in a group (default: order of appearance).
        percent: plot 100 * value.
        highlight: a class index whose label is drawn in bold (e.g. the worst class).
    Returns: the Figure.
    """
    fig, ax = figure_axes(ax, (9, 3.6))
    names = (df[["class_index", "class_name"]].drop_duplicates().sort_values("class_index"))
    idx, labels = names["class_index"].to_numpy(), names["class_name"].astype(str).tolist()
    groups = list(hue_order) if hue_order is not None else list(dict.fromkeys(df[hue]))
    width = 0.8 / max(1, len(groups))
    colors = class_colors(max(len(groups), 1))
    scale = 100.0 if percent else 1.0
    for i, g in enumerate(groups):
        sub = df[df[hue] == g].set_index("class_index").reindex(idx)
        ax.bar(np.arange(len(idx)) + (i - (len(groups) - 1) / 2) * width, scale * sub[value].to_numpy(dtype=float),
               width=width, label=str(g), color=colors[i])
    ax.set_xticks(np.arange(len(idx)))
    ax.set_xticklabels(labels, rotation=30, ha="right")
    if highlight is not None and highlight in list(idx):
        ax.get_xticklabels()[list(idx).index(highlight)].set_fontweight("bold")
    ax.set_ylabel(ylabel or (f"{value} (%)" if percent else value))
    if title:
        ax.set_title(title)
    if len(groups) > 1:
        ax.legend(fontsize="small", ncol=min(len(groups), 5), loc="upper left", bbox_to_anchor=(0, -0.28))
    return fig


def heatmap(matrix, row_labels: Iterable[str], col_labels: Iterable[str], ax: plt.Axes | None = None,
            title: str | None = None, xlabel: str | None = None, ylabel: str | None = None, fmt: str = ".2f",
            cmap: str = "viridis", vmin: float | None = None, vmax: float | None = None,
            annotate: bool = True, colorbar: bool = True) -> plt.Figure:
    """Annotated heat map of a [R, K] matrix (NaN cells left blank), e.g. a source x target attack matrix.

    Args:
        matrix: array-like [R, K].
        row_labels, col_labels: tick labels (R and K of them).
        fmt: format of the cell annotations; annotate=False skips them (large C).
    Returns: the Figure.
    """
    m = np.asarray(matrix, dtype=float)
    rows, cols = list(row_labels), list(col_labels)
    side = 0.45 * max(len(rows), len(cols)) + 1.5
    fig, ax = figure_axes(ax, (side + 1.0, side))
    im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.grid(False)
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows)
    if annotate and m.size <= 400:
        finite = m[np.isfinite(m)]
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for r in range(m.shape[0]):
            for k in range(m.shape[1]):
                if np.isfinite(m[r, k]):
                    ax.text(k, r, format(m[r, k], fmt), ha="center", va="center", fontsize=7,
                            color="black" if m[r, k] > mid else "white")
    _label(ax, xlabel, ylabel, title)
    if colorbar:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return fig


def class_curves(x, values, class_names: Iterable[str], ax: plt.Axes | None = None, title: str | None = None,
                 xlabel: str = "epoch", ylabel: str | None = None, highlight: int | None = None,
                 legend: bool = True, marker: str | None = None) -> plt.Figure:
    """One line per class of a per-class quantity over time (accuracy, vulnerability D_c, weight p_c).

    Args:
        x: the time axis [T] (epochs).
        values: array-like [T, C].
        class_names: C names (legend).
        highlight: a class index drawn thicker (e.g. the worst class).
    Returns: the Figure.
    """
    v = np.asarray(values, dtype=float)
    names = list(class_names)
    fig, ax = figure_axes(ax, (7, 3.6))
    colors = class_colors(len(names))
    for c, name in enumerate(names):
        ax.plot(x, v[:, c], color=colors[c], label=name, marker=marker,
                lw=2.8 if c == highlight else 1.3, alpha=1.0 if highlight in (None, c) else 0.75)
    _label(ax, xlabel, ylabel, title)
    if legend:
        ax.legend(fontsize="x-small", ncol=2, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def epoch_lines(curves, ax: plt.Axes | None = None, bars: Iterable[tuple[float, str]] = (),
                title: str | None = None, xlabel: str = "epoch", ylabel: str | None = None,
                percent: bool = False, ylim: tuple[float, float] | None = None,
                styles: dict | None = None) -> plt.Figure:
    """Run-health signals over epochs: one line per named series, with dotted reference bars.

    Args:
        curves: {label: (x, y)}, e.g. {"ferd, whole pool": (hist["epoch"], hist["agree_pool"])}; NaN leaves a gap.
        bars: (value, label) pairs drawn as dotted horizontal lines (a health bar such as 0.8, or 0 and 1 as the
            degenerate ends of a fraction).
        percent: show fractions (curves and bars) in percent.
        styles: {label: matplotlib keyword dict} for particular series (e.g. a dashed worst class).
    Returns: the Figure. Used for pool agreement (ch. 2, 4), the largest class weight (ch. 3) and the FAE mask's
    non-robust fraction (ch. 4).
    """
    fig, ax = figure_axes(ax, (6.5, 3.4))
    scale = 100.0 if percent else 1.0
    styles = styles or {}
    for i, (label, (x, y)) in enumerate(curves.items()):
        kw = {"marker": "o", "ms": 3, "color": f"C{i}", **styles.get(label, {})}
        ax.plot(np.asarray(x, dtype=float), scale * np.asarray(y, dtype=float), label=label, **kw)
    for j, (value, label) in enumerate(bars):  # dotted, in shades of grey so that two bars stay apart
        ax.axhline(scale * value, color=("black", "dimgray", "darkgray")[j % 3], ls=":", lw=1.4, label=label)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(scale * ylim[0], scale * ylim[1])
    if title:
        ax.set_title(title)
    ax.legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.01, 0.5))  # outside: never hides a line
    return fig


def tsne_embedding(features, perplexity: float = 30.0, max_iter: int = 1000, random_state: int = 0) -> np.ndarray:
    """2-D t-SNE of feature vectors [N, K] (spec 9: perplexity 30, 1,000 iterations, random state 0).

    The perplexity is capped at N - 1, as scikit-learn requires perplexity < N.
    Returns: embedding [N, 2].
    """
    from sklearn.manifold import TSNE

    f = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor) else features, dtype=np.float32)
    if f.ndim != 2 or f.shape[0] < 2:
        from ferd.errors import ConfigError

        raise ConfigError("features", f.shape, "an array [N, K] with N >= 2")
    tsne = TSNE(n_components=2, perplexity=float(min(perplexity, f.shape[0] - 1)), max_iter=max_iter,
                random_state=random_state, init="pca", learning_rate="auto")
    return tsne.fit_transform(f)


def class_scatter(points, labels, class_names: Iterable[str], ax: plt.Axes | None = None,
                  title: str | None = None, size: float = 10.0, legend: bool = True) -> plt.Figure:
    """Scatter of 2-D points [N, 2] coloured by class label [N] (e.g. a t-SNE embedding by teacher argmax)."""
    p = np.asarray(points, dtype=float)
    lab = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    names = list(class_names)
    fig, ax = figure_axes(ax, (5, 4.5))
    colors = class_colors(len(names))
    for c, name in enumerate(names):
        sel = lab == c
        if sel.any():
            ax.scatter(p[sel, 0], p[sel, 1], s=size, color=colors[c], label=name, alpha=0.8, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(fontsize="x-small", markerscale=1.5, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def attack_label(name: str, cfg=None) -> str:
    """Display name of an attack key ('pgd' -> 'PGD-20' with the config's step count) for figures and tables."""
    if cfg is None:
        return _attack_label(name)
    return _attack_label(name, cfg.attack.pgd_steps, cfg.attack.cw_steps)
