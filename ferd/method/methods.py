"""The methods registry: one training strategy per `distill.method`, and the keys of their runs.

Each strategy is a `Distiller` (FERD and its ablations, which are presets of the same loop) or a baseline
subclass. The registry is the one list of method names the code uses (`ferd.config.METHODS` is checked
against it by the tests). A run's key (`run_key`) covers what that method reads and a version of the code it
depends on; an evaluation's key (`eval_key`) adds the attack protocol and the attacks' code.
"""
from __future__ import annotations

from typing import Any

from ferd.config import Config
from ferd.errors import ConfigError
from ferd.method.baselines import DERD, DFARD, DFHL, RSLAD, FairRSLAD
from ferd.method.distill import Distiller
from ferd.method.runs import DistillResult
from ferd.toolkit.codeversion import code_version

METHOD_CLASSES: dict[str, type[Distiller]] = {
    "ferd": Distiller,  # FERD, its ablations and plain DFRD: one loop, switched by presets (spec 7.2)
    "dfhl": DFHL,  # persistent student-only generator, hard labels, high-entropy examples (baselines.md 3)
    "dfard": DFARD,  # APPROXIMATION: AGB-balanced generator, RSLAD student at ITA temperature (baselines.md 4)
    "derd": DERD,  # APPROXIMATION: robust + natural teachers, MTARD weights, SGA gradient merge (baselines.md 5)
    "rslad": RSLAD,  # real data: KL-PGD, 5/6 KL(adv) + 1/6 KL(clean) (baselines.md 7.1)
    "fair_rslad": FairRSLAD,  # real data: RSLAD with GAIRAT-kappa class weights in [5/6, 5/2] (baselines.md 7.2)
}
EVAL_MODULES = ("ferd.toolkit.evaluate", "ferd.toolkit.attacks", "ferd.toolkit.data")


def method_class(cfg: Config) -> type[Distiller]:
    """The strategy of `cfg.distill.method`."""
    try:
        return METHOD_CLASSES[cfg.distill.method]
    except KeyError:
        raise ConfigError("distill.method", cfg.distill.method, tuple(METHOD_CLASSES)) from None


def run_key(cfg: Config) -> str:
    """The key of the run `cfg` describes: the fields its method reads, and the method's code version."""
    return method_class(cfg).run_key(cfg)


def eval_code() -> str:
    """The version of the evaluation code (attacks, per-class evaluation, test data)."""
    return code_version(*EVAL_MODULES)


def eval_key(cfg: Config) -> str:
    """The key of a student's evaluation: its run key, the attack protocol and the evaluation code."""
    return cfg.key("run", "attack", groups=method_class(cfg).reads,
                   code=method_class(cfg).code_version() + eval_code())


def teacher_eval_key(cfg: Config) -> str:
    """The key of the teacher's evaluation: the teacher recipe, the attack protocol and the evaluation code."""
    return cfg.key("teacher", "attack", code=f"{eval_code()}-threads{cfg.distill.threads}")


def run(cfg: Config, **kw: Any) -> DistillResult:
    """Distil a student for `cfg` (or load the finished run from the artifact store)."""
    return method_class(cfg)(cfg, **kw).run()
