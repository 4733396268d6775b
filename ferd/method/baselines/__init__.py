"""Baselines as thin subclasses of `ferd.method.distill.Distiller` (baselines.md 1): each overrides only its stages.

The registry `ferd.method.methods.METHOD_CLASSES` picks one by `cfg.distill.method` (presets "dfhl", "dfard",
"derd", "rslad", "fair_rslad"). Plain DFRD is not here: it is the `dfrd_plain` preset of the FERD loop itself (baselines.md 2).
Each class has a `label` for tables; approximations say "(approx.)".
"""
from ferd.method.baselines.base import Baseline
from ferd.method.baselines.derd import DERD, combine_gradients, pcgrad, stochastic_sign
from ferd.method.baselines.dfard import DFARD
from ferd.method.baselines.dfhl import DFHL, HighEntropy, strong_augment
from ferd.method.baselines.rslad import RSLAD, FairRSLAD, KappaKLPGD, fair_class_weights

__all__ = [
    "Baseline",
    # data-free baselines and their pieces
    "DFHL", "HighEntropy", "strong_augment",
    "DFARD",
    "DERD", "combine_gradients", "pcgrad", "stochastic_sign",
    # data-available references
    "RSLAD", "FairRSLAD", "KappaKLPGD", "fair_class_weights",
]
