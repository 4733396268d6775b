"""ferd: FERD (Fairness-Enhanced Data-Free Robustness Distillation) as a small, tested library.

The public API, grouped as the method is (spec sections in brackets):

- configuration: `make_config`, `Config` [7.2, 7.3, 8]
- data and models: `load_split`, `stratified_subset`, `create_model`, `list_models` [3, 4]
- attacks and evaluation: `build_attack`, `FGSM`, `PGD`, `CWInf`, `KLPGD`, `AutoAttack`, `evaluate`, `summarize` [2]
- FERD's parts: `Generator`, `BNStatsLoss`, `ikl`, `fae_term`, `class_weights`, `probe_vulnerability`, `UTAE`,
  `SyntheticPool` [5.2-5.8]
- the loop and teachers: `Distiller` (and `ferd.distill.run`), `train_teacher` [5.9, baselines 8]
- around them: `ferd.baselines` (DFHL, DFARD/DERD approximations, RSLAD, Fair-RSLAD), `ferd.experiments` (cached
  steps for the CLI and the book), `ferd.speed` (bf16, channels_last, compile), `ferd.parallel` (torchrun/DDP),
  `ferd.artifacts` (atomic, checksummed, locked store), `ferd.book` (the book runner), `ferd.cli`
"""
import os as _os

_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see ferd.runtime

__version__ = "0.1.0"

if _os.environ.get("FERD_THREADS"):  # the book runner gives each parallel chapter its share of the cores
    import torch as _torch

    _torch.set_num_threads(int(_os.environ["FERD_THREADS"]))

from ferd.config import Config, make_config  # noqa: E402
from ferd.data import load_split, stratified_subset  # noqa: E402
from ferd.models import create_model, list_models  # noqa: E402
from ferd.attacks import CWInf, FGSM, KLPGD, PGD, AutoAttack, build_attack  # noqa: E402
from ferd.evaluate import evaluate, summarize  # noqa: E402
from ferd.generator import Generator  # noqa: E402
from ferd.losses import BNStatsLoss, ikl  # noqa: E402
from ferd.fae import fae_term  # noqa: E402
from ferd.reweighting import class_weights, probe_vulnerability  # noqa: E402
from ferd.utae import UTAE  # noqa: E402
from ferd.pool import SyntheticPool  # noqa: E402
from ferd.distill import Distiller  # noqa: E402
from ferd.teachers import train_teacher  # noqa: E402

__all__ = ["Config", "make_config", "load_split", "stratified_subset", "create_model", "list_models",
           "build_attack", "FGSM", "PGD", "CWInf", "KLPGD", "AutoAttack", "evaluate", "summarize", "Generator",
           "BNStatsLoss", "ikl", "fae_term", "class_weights", "probe_vulnerability", "UTAE", "SyntheticPool",
           "Distiller", "train_teacher"]
