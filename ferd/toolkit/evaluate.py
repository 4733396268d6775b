"""Per-class accuracy under attacks and the summaries the paper prints (spec 2.2, 2.3, 9).

``evaluate`` attacks a test split once per attack, in a fixed order, and returns a tidy per-class
table; ``summarize`` turns it into Avg., Worst, Worst-10% and NSD per attack; ``format_table`` prints
those as the paper does. ``attack_confusion`` and ``targeted_success_matrix`` give the data of the
"which classes are attacks pushed into" figure (spec 9, Fig. 1 right).

Example::

    per_class = evaluate(model, load_split("fashion_mnist", "test"),
                         {"Clean": Clean(model), "PGD-20": PGD(model, 0.1, 0.025, 20)})
    print(format_table(summarize(per_class)).to_string())
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm import tqdm

from ferd.errors import ConfigError
from ferd.toolkit import metrics
from ferd.toolkit.attacks import PGD, Attack, Clean, TargetedPGD

COLUMNS = ["attack", "class_index", "class_name", "correct", "count", "accuracy"]


def _check_split(split: Any) -> tuple[Tensor, Tensor, list[str]]:
    """Accept ``ferd.toolkit.data.ImageSplit`` or anything with ``images``, ``labels`` and ``classes``."""
    if not all(hasattr(split, a) for a in ("images", "labels", "classes")):
        raise ConfigError("split", type(split).__name__, "an object with images, labels, classes")
    images, labels, classes = split.images, split.labels, list(split.classes)
    if images.shape[0] != labels.shape[0] or labels.dtype != torch.int64:
        raise ConfigError("split.labels", f"{labels.dtype} {tuple(labels.shape)}",
                          f"int64 labels, one per image ({images.shape[0]})")
    if labels.numel() and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ConfigError("split.labels", (labels.min().item(), labels.max().item()),
                          f"class indices in [0, {len(classes)})")
    return images, labels, classes


def _batch_size(batch_size: Any) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError("batch_size", batch_size, "an integer >= 1")
    return batch_size


def _to_float(images: Tensor, device: torch.device) -> Tensor:
    """uint8 [B,C,H,W] -> float32 in [0, 1] (float images are only cast)."""
    x = images.to(device)
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


@contextlib.contextmanager
def _evaluation_mode(model: nn.Module, device: str | torch.device) -> Iterator[torch.device]:
    """Model on ``device`` in eval mode for the block; its modes and device restored afterwards."""
    tensors = list(model.parameters()) + list(model.buffers())
    wrong = {str(t.dtype) for t in tensors if t.is_floating_point() and t.dtype != torch.float32}
    if wrong:
        raise ConfigError("model dtype", sorted(wrong), "float32 parameters (call model.float())")
    device = torch.device(device)
    home = tensors[0].device if tensors else device
    modes = [(m, m.training) for m in model.modules()]
    model.to(device).eval()
    try:
        yield device
    finally:
        for module, training in modes:
            module.training = training
        model.to(home)


def _predict(model: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x).argmax(dim=1).cpu()


def _clean_correct(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int,
                   device: torch.device) -> Tensor:
    """Boolean [N]: is the clean image classified correctly?"""
    return torch.cat([_predict(model, _to_float(images[i:i + batch_size], device))
                      == labels[i:i + batch_size] for i in range(0, len(labels), batch_size)])


def evaluate(model: nn.Module, split: Any, attacks: dict[str, Attack], batch_size: int = 256,
             device: str | torch.device = "cpu", progress: bool = True) -> pd.DataFrame:
    """Per-class accuracy of ``model`` on ``split`` under each attack (spec 2.1-2.3).

    Only the points the model classifies correctly on the clean input are attacked; a clean-
    misclassified point counts as not robust (the robust-accuracy convention of torchattacks'
    MultiAttack and of AutoAttack). Each attack's random generator is re-seeded first, so the table
    is reproducible. The model runs in float32 and eval mode; its modes and device are restored.

    Args:
        model: classifier returning logits [B, C], float32 parameters.
        split: ``ferd.toolkit.data.ImageSplit`` or any object with ``images`` (uint8 [N,C,H,W], or float in
            [0, 1]), ``labels`` (int64 [N]) and ``classes`` (list of C names).
        attacks: display name -> attack with a label target (Clean, FGSM, PGD, CWInf, AutoAttack).
        batch_size: evaluation batch size (spec 2.3: 256).
        device: where model and batches run.
        progress: show a tqdm bar per attack.
    Returns:
        Tidy frame, one row per (attack, class): attack, class_index, class_name, correct, count,
        accuracy (a fraction in [0, 1]; NaN for a class without images).
    """
    images, labels, classes = _check_split(split)
    batch_size = _batch_size(batch_size)
    if not isinstance(attacks, dict) or not attacks:
        raise ConfigError("attacks", attacks, "a non-empty dict of name -> Attack")
    for name, attack in attacks.items():
        if not isinstance(attack, Attack) or attack.target_kind != "labels":
            raise ConfigError(f"attacks[{name!r}]", attack, "an Attack whose target is the labels")
    count = torch.bincount(labels, minlength=len(classes)).numpy()
    frames = []
    with _evaluation_mode(model, device) as device:
        clean_ok = _clean_correct(model, images, labels, batch_size, device)
        for name, attack in attacks.items():
            attack.reset_rng()
            robust = torch.zeros_like(clean_ok)
            for start in tqdm(range(0, len(labels), batch_size), desc=name, disable=not progress):
                ok = clean_ok[start:start + batch_size]
                if isinstance(attack, Clean) or not ok.any():
                    robust[start:start + batch_size] = ok
                    continue
                x = _to_float(images[start:start + batch_size][ok], device)
                y = labels[start:start + batch_size][ok]
                hit = _predict(model, attack(x, y.to(device))) == y
                robust[start:start + batch_size][ok] = hit
            correct = torch.bincount(labels[robust], minlength=len(classes)).numpy()
            frames.append(pd.DataFrame({
                "attack": name, "class_index": np.arange(len(classes)), "class_name": classes,
                "correct": correct, "count": count,
                "accuracy": np.where(count > 0, correct / np.maximum(count, 1), np.nan)}))
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def summarize(per_class: pd.DataFrame, worst_frac: float = 0.1,
              nsd_std: str = "population") -> pd.DataFrame:
    """One row per attack (in table order): attack, avg, worst, worst10, nsd (spec 2.2).

    ``avg`` is total correct over total count, which equals the mean of the per-class accuracies on
    a balanced set; worst, worst10 (mean of the ceil(worst_frac * C) lowest) and nsd (population std
    by default) use the classes that have images. Accuracies stay fractions.
    """
    missing = [c for c in COLUMNS if c not in per_class.columns]
    if missing:
        raise ConfigError("per_class columns", missing, f"a frame from evaluate() with {COLUMNS}")
    rows = []
    for attack, group in per_class.groupby("attack", sort=False):
        acc = group["accuracy"].dropna().to_numpy()
        rows.append({"attack": attack, "avg": group["correct"].sum() / group["count"].sum(),
                     "worst": metrics.worst(acc), "worst10": metrics.worst_k(acc, worst_frac),
                     "nsd": metrics.nsd(acc, nsd_std)})
    return pd.DataFrame(rows, columns=["attack", "avg", "worst", "worst10", "nsd"])


def format_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The paper's print format (spec 2.2): accuracies in percent with 2 decimals, NSD with 3.

    Returns a frame of strings indexed by attack; ``print(format_table(s).to_string())``.
    """
    table = pd.DataFrame(index=pd.Index(summary["attack"], name="attack"))
    for column, title in (("avg", "Avg. (%)"), ("worst", "Worst (%)"), ("worst10", "Worst-10% (%)")):
        table[title] = [f"{100 * v:.2f}" for v in summary[column]]
    table["NSD"] = [f"{v:.3f}" for v in summary["nsd"]]
    return table


def attack_confusion(model: nn.Module, split: Any, attack: Attack, num_classes: int,
                     batch_size: int = 256, device: str | torch.device = "cpu",
                     normalize: bool = False, progress: bool = False) -> np.ndarray:
    """Confusion matrix of the adversarial predictions, [C, C]: rows true class, columns predicted.

    Every image is attacked (not only the clean-correct ones), so row c shows where class c is pushed
    (spec 9, Fig. 1 right, variant a). ``normalize=True`` divides each row by its class count.
    """
    images, labels, _ = _check_split(split)
    batch_size = _batch_size(batch_size)
    if labels.numel() and labels.max() >= num_classes:
        raise ConfigError("num_classes", num_classes, f"> the largest label {labels.max().item()}")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    attack.reset_rng()
    with _evaluation_mode(model, device) as device:
        for start in tqdm(range(0, len(labels), batch_size), disable=not progress):
            x = _to_float(images[start:start + batch_size], device)
            y = labels[start:start + batch_size]
            pred = _predict(model, attack(x, y.to(device)))
            np.add.at(matrix, (y.numpy(), pred.numpy()), 1)
    if normalize:
        return matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    return matrix


def _first_per_class(labels: Tensor, per_class: int | None) -> Tensor:
    """Indices of the first ``per_class`` images of each class, in dataset order (all if None)."""
    if per_class is None:
        return torch.arange(len(labels))
    if not isinstance(per_class, int) or isinstance(per_class, bool) or per_class < 1:
        raise ConfigError("per_class", per_class, "an integer >= 1 or None")
    rank = torch.zeros_like(labels)
    for c in labels.unique():
        where = (labels == c).nonzero().squeeze(1)
        rank[where] = torch.arange(len(where))
    return (rank < per_class).nonzero().squeeze(1)


def targeted_success_matrix(model: nn.Module, split: Any, eps: float, alpha: float, steps: int,
                            num_classes: int, per_class: int | None = None, batch_size: int = 256,
                            device: str | torch.device = "cpu", seed: int = 0,
                            progress: bool = False) -> np.ndarray:
    """S[c, j]: the fraction of class-c images that targeted PGD towards j classifies as j (spec 9).

    For each target j a :class:`ferd.toolkit.attacks.TargetedPGD` (eps, alpha, steps, uniform start, seed)
    attacks every image whose true class is not j; the diagonal is NaN. ``per_class`` limits the
    images to the first ``per_class`` of each class in dataset order. Cost: C x (images) x steps.
    """
    images, labels, _ = _check_split(split)
    batch_size = _batch_size(batch_size)
    keep = _first_per_class(labels, per_class)
    images, labels = images[keep], labels[keep]
    count = np.bincount(labels.numpy(), minlength=num_classes).astype(np.float64)
    success = np.full((num_classes, num_classes), np.nan)
    with _evaluation_mode(model, device) as device:
        for j in tqdm(range(num_classes), desc="targets", disable=not progress):
            attack = TargetedPGD(model, eps, alpha, steps, seed=seed)
            hits = np.zeros(num_classes)
            for start in range(0, len(labels), batch_size):
                y = labels[start:start + batch_size]
                other = y != j
                if not other.any():
                    continue
                x = _to_float(images[start:start + batch_size][other], device)
                target = torch.full((int(other.sum()),), j, dtype=torch.int64, device=device)
                pred = _predict(model, attack(x, target))
                hits += np.bincount(y[other][pred == j].numpy(), minlength=num_classes)
            column = np.divide(hits, count, out=np.full(num_classes, np.nan), where=count > 0)
            column[j] = np.nan
            success[:, j] = column
    return success


def tracking_row(model: nn.Module, split: Any, attack_cfg: Any, device: str | torch.device) -> dict[str, float]:
    """Clean and PGD accuracy during training (logging only, spec 2.4 and 9): `acc_<attack>` overall,
    `worst_<attack>` of the worst class and `acc_<attack>_<c>` per class. `attack_cfg` is a `config.AttackConfig`."""
    a = attack_cfg
    attacks = {"clean": Clean(model), "pgd": PGD(model, eps=a.eps, alpha=a.alpha, steps=a.pgd_steps, seed=0)}
    df = evaluate(model, split, attacks, batch_size=a.eval_batch_size, device=device, progress=False)
    out: dict[str, float] = {}
    for name, g in df.groupby("attack"):
        out[f"acc_{name}"] = float(g["correct"].sum() / g["count"].sum())
        out[f"worst_{name}"] = float(g["accuracy"].min())
        out.update({f"acc_{name}_{int(c)}": float(v) for c, v in zip(g["class_index"], g["accuracy"])})
    return out
