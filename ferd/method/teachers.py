"""Robust teachers: training (PGD-AT, TRADES, FGSM-RS, natural), per-epoch checkpoints, resume, loading.

Recipes: baselines.md section 8. The inner attack runs with the model in eval mode (the uniform
`ferd.toolkit.attacks` interface switches modes in one place); TRADES does the same, for PGD-AT it is a recorded
choice. Checkpoints live in the artifact store under `teacher/<cfg.key('teacher')>/`.

    python -m ferd train-teacher --profile cpu
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ferd.config import Config, resolve_device
from ferd.errors import CheckpointError, TrainingError
from ferd.toolkit import artifacts
from ferd.toolkit.attacks import KLPGD, PGD
from ferd.toolkit.data import ImageSplit, load_split, stratified_subset
from ferd.toolkit.evaluate import tracking_row
from ferd.toolkit.models import create_model, get_entry
from ferd.toolkit.runtime import make_generator, rng_state, seed_everything, set_rng_state


def natural_teacher_config(cfg: Config) -> Config:
    """The same teacher recipe without adversarial training (for the DERD approximation, baselines.md 8.4)."""
    nat = dataclasses.replace(cfg.teacher, method="natural")
    return dataclasses.replace(cfg, teacher=nat)


def _lr_at(cfg: Config, epoch: int) -> float:
    """Step schedule: x0.1 after each milestone epoch (1-based epochs). FGSM-RS uses a cyclic schedule."""
    t = cfg.teacher
    if t.method == "fgsm_rs":
        half = t.epochs / 2
        return t.lr * (epoch / half if epoch <= half else (t.epochs - epoch + 1) / half)
    return t.lr * 0.1 ** sum(epoch > m for m in t.milestones)


def _adversarial_loss(cfg: Config, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                      seed: int) -> torch.Tensor:
    """One training loss of the configured recipe on a clean batch (model already in train mode)."""
    t, a = cfg.teacher, cfg.attack
    if t.method == "natural":
        return F.cross_entropy(model(x), y)
    if t.method == "pgd_at":
        x_adv = PGD(model, eps=a.eps, alpha=a.alpha, steps=t.attack_steps, seed=seed)(x, y)
        return F.cross_entropy(model(x_adv), y)
    if t.method == "fgsm_rs":
        # Wong et al.: uniform start, one step of 1.25 eps. PGD with one step of that size is exactly this.
        x_adv = PGD(model, eps=a.eps, alpha=min(1.25 * a.eps, 1.0), steps=1, seed=seed)(x, y)
        return F.cross_entropy(model(x_adv), y)
    # trades: CE(f(x), y) + beta * KL(q(f(x)) || q(f(x'))), x' from KL-PGD in eval mode
    with torch.no_grad():
        was_training = model.training
        model.eval()
        clean_logits = model(x)
        model.train(was_training)
    x_adv = KLPGD(model, eps=a.eps, alpha=a.alpha, steps=t.attack_steps, seed=seed)(x, clean_logits)
    logits = model(x)
    kl = F.kl_div(F.log_softmax(model(x_adv), 1), F.softmax(logits, 1), reduction="batchmean")
    return F.cross_entropy(logits, y) + t.trades_beta * kl


def training_subset(cfg: Config) -> ImageSplit:
    train = load_split(cfg.dataset, "train")
    if cfg.teacher.train_size:
        per_class = max(1, cfg.teacher.train_size // cfg.num_classes)
        train = stratified_subset(train, per_class)
    return train


SHIPPED_DIR = Path(__file__).resolve().parents[1] / "shipped"
MANIFEST = "teachers.json"


def shipped_teachers() -> dict[str, dict[str, Any]]:
    """The teachers shipped with the package (`ferd/shipped/teachers.json`), by teacher key."""
    path = SHIPPED_DIR / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def shipped_teacher_path(cfg: Config) -> Path | None:
    """The shipped checkpoint of `cfg`'s teacher, its sha256 checked, or None when none is shipped for its key.

    A checkpoint whose bytes do not match the manifest's sha256 raises CheckpointError naming both sums.
    """
    entry = shipped_teachers().get(cfg.key("teacher"))
    if entry is None:
        return None
    path = SHIPPED_DIR / entry["file"]
    if not path.exists():
        raise CheckpointError(f"shipped teacher {path} is listed in {MANIFEST} but missing")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != entry["sha256"]:
        raise CheckpointError(f"shipped teacher {path} has sha256 {digest}, but {MANIFEST} records {entry['sha256']}")
    return path


def ship_teacher(cfg: Config, store: artifacts.ArtifactStore | None = None, command: str = "") -> Path:
    """Copy the store's finished teacher of `cfg` into `ferd/shipped/` and record it in the manifest (sha256,
    provenance, the command that trained it), so that every later run loads it instead of training."""
    store = store or artifacts.ArtifactStore()
    key = cfg.key("teacher")
    src = store.path("teacher", key, "teacher.pt")
    blob = artifacts.load_torch(src)  # checksum-verified
    name = f"teacher_{cfg.dataset}_{cfg.teacher.arch}_{key}.pt"
    data = src.read_bytes()
    artifacts.write_atomic(SHIPPED_DIR / name, data)
    (SHIPPED_DIR / (name + ".sha256")).unlink(missing_ok=True)  # the manifest holds the sum
    manifest = shipped_teachers()
    prov = blob.get("provenance", {})
    manifest[key] = {"file": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                     "arch": cfg.teacher.arch, "dataset": cfg.dataset, "recipe": dataclasses.asdict(cfg.teacher),
                     "eps": cfg.attack.eps, "command": command, "git_commit": prov.get("git_commit"),
                     "torch_version": prov.get("torch_version"), "created": prov.get("created")}
    artifacts.write_atomic(SHIPPED_DIR / MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    (SHIPPED_DIR / (MANIFEST + ".sha256")).unlink(missing_ok=True)
    return SHIPPED_DIR / name


def train_teacher(cfg: Config, store: artifacts.ArtifactStore | None = None, progress: bool = True,
                  use_shipped: bool = True) -> tuple[torch.nn.Module, pd.DataFrame]:
    """Load the shipped teacher, or train (or resume, or load) the configured teacher; return it in eval mode
    with its history.

    The teacher of the `cpu` profile ships with the package (`ferd/shipped/`, sha256-checked) and is loaded
    unless `use_shipped=False`, which trains it again into the artifact store (chapter 1's `retrain_teacher`).
    A checkpoint is written after every epoch; a killed run restarts from the last finished epoch.
    """
    device = torch.device(resolve_device(cfg.device))
    shipped = shipped_teacher_path(cfg) if use_shipped else None
    if shipped is not None:
        return _from_final(cfg, shipped, device)
    store = store or artifacts.ArtifactStore()
    key = cfg.key("teacher")
    final = store.path("teacher", key, "teacher.pt")
    if not final.exists():
        training_subset(cfg)  # a missing dataset fails here (DataError) before anything is written to the store
    with artifacts.locked(final):
        artifacts.remove_temporaries(final.parent)  # partial files of a killed writer
        if final.exists():
            try:
                return _from_final(cfg, final, device)
            except CheckpointError as err:
                import warnings
                warnings.warn(f"retraining the teacher: {err}", stacklevel=2)
        model, history = _train(cfg, store, key, device, progress)
        artifacts.save_frame(store.path("teacher", key, "history.csv"), history)
        # teacher.pt last: it marks the teacher finished, so a kill before it leaves nothing half-done
        artifacts.save_torch(final, {"state_dict": model.state_dict(), "history": history.to_dict("list"),
                                     "provenance": artifacts.provenance(cfg.to_dict())})
    return model.eval(), history


def _from_final(cfg: Config, path: Path, device: torch.device) -> tuple[torch.nn.Module, pd.DataFrame]:
    # the store's checksum file, or (shipped) the manifest's sum, checked by shipped_teacher_path
    blob = (torch.load(path, map_location="cpu", weights_only=False) if path.parent == SHIPPED_DIR
            else artifacts.load_torch(path))
    model = create_model(cfg.teacher.arch, num_classes=cfg.num_classes).to(device)
    load_state_dict_checked(model, blob["state_dict"], str(path))
    return model.eval(), pd.DataFrame(blob["history"])


def _train(cfg: Config, store: artifacts.ArtifactStore, key: str, device: torch.device, progress: bool
           ) -> tuple[torch.nn.Module, pd.DataFrame]:
    t = cfg.teacher
    seed_everything(cfg.seed)
    model = create_model(t.arch, num_classes=cfg.num_classes).to(device)
    if cfg.distill.channels_last:  # speed only (NHWC convolutions on this CPU, benchmarks/README.md)
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=0.9, weight_decay=t.weight_decay)
    ckpt_path = store.path("teacher", key, "checkpoint.pt")
    start, rows = 1, []
    if ckpt_path.exists():
        try:
            ck = artifacts.load_torch(ckpt_path)
            why = state_mismatch(model, ck["model"])
            if why:
                raise CheckpointError(f"{ckpt_path} does not fit this code's {t.arch} (model code changed?): {why}")
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            set_rng_state(ck["rng"])
            start, rows = ck["epoch"] + 1, ck["history"]
        except CheckpointError as err:
            import warnings
            warnings.warn(f"ignoring checkpoint and starting over: {err}", stacklevel=2)
    train = training_subset(cfg)
    shuffle = make_generator(cfg.seed + 1)
    for epoch in range(1, start):  # advance the shuffle generator past finished epochs
        torch.randperm(len(train), generator=shuffle)
    for epoch in range(start, t.epochs + 1):
        lr = _lr_at(cfg, epoch)
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        total, loss_sum = 0, 0.0
        order = torch.randperm(len(train), generator=shuffle)
        batches = range(0, len(train), t.batch_size)
        bar = tqdm(batches, desc=f"teacher {t.method} epoch {epoch}/{t.epochs}", disable=not progress, leave=False)
        for step, i in enumerate(bar):
            idx = order[i:i + t.batch_size]
            x = train.float_images(idx).to(device)
            y = train.labels[idx].to(device)
            loss = _adversarial_loss(cfg, model, x, y, seed=cfg.seed * 100003 + epoch * 1009 + step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(idx)
            if not math.isfinite(loss_sum):
                last = f"{ckpt_path} (epoch {epoch - 1})" if epoch > 1 else "none (no epoch had finished)"
                raise TrainingError(f"loss term 'teacher_loss' ({t.method}) is {float(loss.detach())} at epoch "
                                    f"{epoch}, step {step}; the last good state is {last}")
            total += len(idx)
            bar.set_postfix(loss=f"{loss_sum / total:.3f}")
        rows.append({"epoch": epoch, "lr": lr, "train_loss": loss_sum / total, **track_teacher(cfg, model, device)})
        artifacts.save_torch(ckpt_path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                         "epoch": epoch, "history": rows, "rng": rng_state()})
    return model.eval(), pd.DataFrame(rows)


def track_teacher(cfg: Config, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
    """Clean and PGD-20 accuracy per class on the first `track_per_class` test images of each class after an
    epoch: the training curves of chapter 1 (logging only; the attacks use their own seeded generators)."""
    n = cfg.teacher.track_per_class
    if not n:
        return {}
    return tracking_row(model, stratified_subset(load_split(cfg.dataset, "test"), n), cfg.attack, device)


def load_state_dict_checked(model: torch.nn.Module, state: dict[str, Any], source: str,
                            arch: str | None = None) -> None:
    """Strict load that names missing and unexpected keys; applies the registry's key adapter first."""
    if arch is not None:
        adapter = get_entry(arch).checkpoint_key_adapter
        if adapter is not None:
            state = adapter(state)
    missing, unexpected = _key_diff(model.state_dict(), state)
    if missing or unexpected:
        raise CheckpointError(f"{source} does not match {type(model).__name__}: missing keys {missing[:8]}"
                              f"{'...' if len(missing) > 8 else ''}; unexpected keys {unexpected[:8]}"
                              f"{'...' if len(unexpected) > 8 else ''}")
    why = state_mismatch(model, state)  # shapes, in one line, before any weight is copied
    if why:
        raise CheckpointError(f"{source} does not match {type(model).__name__}: {why}")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{source} does not match the architecture: {err}") from None


def state_mismatch(model: torch.nn.Module, state: dict[str, Any]) -> str | None:
    """Why `state` cannot load into `model` (keys or shapes), or None when it fits; changes nothing."""
    mine = model.state_dict()
    missing, unexpected = _key_diff(mine, state)
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in mine.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        return (f"missing keys {missing[:8]}; unexpected keys {unexpected[:8]}; "
                f"shapes (checkpoint vs model) {shapes[:4]}")
    return None


def _key_diff(expected: dict[str, Any], got: dict[str, Any]) -> tuple[list[str], list[str]]:
    return sorted(set(expected) - set(got)), sorted(set(got) - set(expected))


def load_external_teacher(path: str | Path, arch: str, num_classes: int) -> torch.nn.Module:
    """Load an external checkpoint (e.g. the TRADES WRN-34-10 layout) into a registry model, in eval mode."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else blob
    model = create_model(arch, num_classes=num_classes)
    load_state_dict_checked(model, state, str(path), arch=arch)
    return model.eval()
