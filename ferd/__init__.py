"""ferd: FERD (Fairness-Enhanced Data-Free Robustness Distillation) as a small, tested library."""
import os as _os

_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see ferd.runtime

__version__ = "0.1.0"
