"""Baselines as thin subclasses of `ferd.distill.Distiller` (baselines.md 1): each overrides only its stages.

`ferd.distill.distiller_class` picks one by `cfg.distill.method` (presets "dfhl", "dfard", "derd", "rslad",
"fair_rslad"). Plain DFRD is not here: it is the `dfrd_plain` preset of the FERD loop itself (baselines.md 2).
Each class has a `label` for tables; approximations say "(approx.)".
"""
from ferd.baselines.base import Baseline
from ferd.baselines.derd import DERD, combine_gradients, pcgrad, stochastic_sign
from ferd.baselines.dfard import DFARD
from ferd.baselines.dfhl import DFHL, HighEntropy, strong_augment
from ferd.baselines.rslad import RSLAD, FairRSLAD, KappaKLPGD, fair_class_weights

BASELINES = {
    "dfhl": DFHL,  # persistent student-only generator, hard labels, high-entropy examples (baselines.md 3)
    "dfard": DFARD,  # APPROXIMATION: AGB-balanced generator, RSLAD student at ITA temperature (baselines.md 4)
    "derd": DERD,  # APPROXIMATION: robust + natural teachers, MTARD weights, SGA gradient merge (baselines.md 5)
    "rslad": RSLAD,  # real data: KL-PGD, 5/6 KL(adv) + 1/6 KL(clean) (baselines.md 7.1)
    "fair_rslad": FairRSLAD,  # real data: RSLAD with GAIRAT-kappa class weights in [5/6, 5/2] (baselines.md 7.2)
}

__all__ = [
    # registry
    "BASELINES", "Baseline",
    # data-free baselines and their pieces
    "DFHL", "HighEntropy", "strong_augment",
    "DFARD",
    "DERD", "combine_gradients", "pcgrad", "stochastic_sign",
    # data-available references
    "RSLAD", "FairRSLAD", "KappaKLPGD", "fair_class_weights",
]
