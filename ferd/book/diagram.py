"""FERD's pipeline drawn by code (chapter 3): boxes and arrows are data, so the figure follows the code's names.

    fig = pipeline_diagram()
"""
from __future__ import annotations

import matplotlib.pyplot as plt

from ferd.book.plots import figure_axes

PIPELINE_BOXES = {  # name: (x, y, label, which part of FERD it belongs to), in axes coordinates
    "teacher": (0.09, 0.80, "robust teacher $f^T$\n(frozen)", "given"),
    "generator": (0.35, 0.80, "generator $G(z)$,\nlabels $y \\sim p$", "synthesis"),
    "pool": (0.62, 0.80, "synthetic pool\n(kept batch per round)", "synthesis"),
    "utae": (0.88, 0.80, "UTAE $x_U$: KL-PGD\n$-\\gamma$ KL to uniform", "utae"),
    "fae": (0.35, 0.42, "FAE: $\\mathcal{L}_{uni}$ on the\nnon-robust channels", "fae"),
    "probe": (0.62, 0.42, "probe: PGD on $f^T$,\nvulnerability $D_c$", "reweighting"),
    "student": (0.88, 0.42, "student $f^S$: IKL to\n$f^T$ on $x_F$ and $x_U$", "given"),
    "weights": (0.09, 0.42, "class weights\n$p = \\mathrm{softmax}(D/\\tau)$", "reweighting"),
}
PIPELINE_ARROWS = [  # (start, end, label, curvature): start and end points in axes coordinates
    ((0.16, 0.80), (0.28, 0.80), "BN, CE, adv.", 0.0), ((0.42, 0.80), (0.53, 0.80), "keep", 0.0),
    ((0.71, 0.80), (0.81, 0.80), "batches", 0.0), ((0.88, 0.72), (0.88, 0.50), "", 0.0),
    ((0.33, 0.72), (0.33, 0.50), "", 0.0), ((0.37, 0.50), (0.37, 0.72), "", 0.0),
    ((0.40, 0.72), (0.57, 0.50), "last batch", 0.0), ((0.55, 0.36), (0.13, 0.36), "", -0.35),
    ((0.12, 0.50), (0.29, 0.73), "next epoch", -0.2),
]
PIPELINE_PARTS = {"given": "#d9d9d9", "synthesis": "#a6cee3", "fae": "#b2df8a", "reweighting": "#fdbf6f",
                  "utae": "#cab2d6"}


def pipeline_diagram(ax: plt.Axes | None = None) -> plt.Figure:
    """FERD's pipeline: one epoch from the teacher to the student, with the three parts coloured
    (reweighting, FAE, UTAE) and the data-free synthesis they act on."""
    from matplotlib.patches import FancyArrowPatch, Patch

    fig, ax = figure_axes(ax, (11, 4.2))
    for name, (x, y, label, part) in PIPELINE_BOXES.items():
        ax.text(x, y, label, ha="center", va="center", fontsize=9, transform=ax.transAxes,
                bbox={"boxstyle": "round,pad=0.5", "fc": PIPELINE_PARTS[part], "ec": "black", "lw": 0.8})
    for start, end, label, bend in PIPELINE_ARROWS:
        ax.add_patch(FancyArrowPatch(start, end, transform=ax.transAxes, arrowstyle="-|>", mutation_scale=12,
                                     lw=1.0, color="black", connectionstyle=f"arc3,rad={bend}"))
        if label:
            ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.03, label, ha="center", va="bottom",
                    fontsize=8, style="italic", transform=ax.transAxes)
    ax.legend(handles=[Patch(fc=c, ec="black", label=n) for n, c in PIPELINE_PARTS.items()], loc="lower right",
              fontsize=8, frameon=False, ncol=5, bbox_to_anchor=(1.0, 0.1))
    ax.set_xlim(0, 1)
    ax.set_ylim(0.1, 0.95)
    ax.set_axis_off()
    return fig
