"""ferd: FERD (Fairness-Enhanced Data-Free Robustness Distillation) as a small, tested library.

The public API, grouped as the method is (spec sections in brackets):

- configuration: `make_config`, `Config` [7.2, 7.3, 8]
- data and models: `load_split`, `stratified_subset`, `create_model`, `list_models` [3, 4]
- attacks and evaluation: `build_attack`, `FGSM`, `PGD`, `CWInf`, `KLPGD`, `AutoAttack`, `evaluate`, `summarize` [2]
- FERD's parts: `Generator`, `BNStatsLoss`, `ikl`, `fae_term`, `class_weights`, `probe_vulnerability`, `UTAE`,
  `SyntheticPool` [5.2-5.8]
- the loop and teachers: `Distiller`, `run_key` (and `ferd.method.methods.run`), `train_teacher` [5.9, baselines 8]

The package has four layers, and imports go one way, from the top down (tests/test_layers.py):

    ferd.book     the book machinery: cached experiments and prefetch, health, tables, plots, the runner
    ferd.method   the method: generator, losses, FAE, probe and reweighting, UTAE, pool, the loop, baselines
    ferd.config   configuration as data: sections, profiles and presets, one `make_config`
    ferd.toolkit  robustness tools: data, models, attacks, evaluation, metrics, artifact store, runtime, speed

`ferd.errors` sits under all of them; `ferd.cli` (the command line) on top.
"""
import os as _os

# The one thing importing ferd does: on a 2-core machine a busy neighbour slows torch 10-26x unless OpenMP
# waits passively, and the variable only works if set before torch is imported (ferd.toolkit.runtime). It
# changes no result, and a value the user set is kept.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.2.0"

from ferd.config import Config, make_config  # noqa: E402
from ferd.method.distill import Distiller  # noqa: E402
from ferd.method.fae import fae_term  # noqa: E402
from ferd.method.generator import Generator  # noqa: E402
from ferd.method.losses import BNStatsLoss, ikl  # noqa: E402
from ferd.method.methods import run_key  # noqa: E402
from ferd.method.pool import SyntheticPool  # noqa: E402
from ferd.method.reweighting import class_weights, probe_vulnerability  # noqa: E402
from ferd.method.teachers import train_teacher  # noqa: E402
from ferd.method.utae import UTAE  # noqa: E402
from ferd.toolkit.attacks import FGSM, KLPGD, PGD, AutoAttack, CWInf, build_attack  # noqa: E402
from ferd.toolkit.data import load_split, stratified_subset  # noqa: E402
from ferd.toolkit.evaluate import evaluate, summarize  # noqa: E402
from ferd.toolkit.models import create_model, list_models  # noqa: E402

__all__ = ["Config", "make_config", "load_split", "stratified_subset", "create_model", "list_models",
           "build_attack", "FGSM", "PGD", "CWInf", "KLPGD", "AutoAttack", "evaluate", "summarize", "Generator",
           "BNStatsLoss", "ikl", "fae_term", "class_weights", "probe_vulnerability", "UTAE", "SyntheticPool",
           "Distiller", "run_key", "train_teacher"]
