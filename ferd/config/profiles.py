"""Profiles and presets: each holds only its differences from the defaults of `ferd.config` (spec 5.10, 7.3, 8).

Keys are dotted config fields. `make_config` applies: defaults < profile < PAPER_DATASETS (paper profile
only) < preset < explicit overrides.
"""
from __future__ import annotations

from typing import Any

# ------------------------------------------------------------------------------------------------
# Profiles and presets: only their differences from the defaults.
# ------------------------------------------------------------------------------------------------
# The Fashion-MNIST miniature's departures from the released code, each a switch whose release value is the
# default (spec 8.0; issue 10's measurements in benchmarks/results/synthesis_sweep.csv). Without them the teacher
# recognised 5.7 % of the synthetic pool, the FAE mask was 100 % non-robust and absent classes were starved.
MINIATURE: dict[str, Any] = {
    "distill.gen_loss_weights": (5.0, 1.0, 10.0, 5.0),  # class term x10: the teacher recognises the pool (M1)
    "distill.ib_lr": 0.5,  # the IB noise can reach the robust threshold in 10 steps (M2)
    "distill.absent_class_policy": "carry_forward",  # a class absent from the probe keeps its last D_c (M3)
    "distill.aug_flip": False,  # no horizontal flip: Fashion-MNIST's shoes all point left (M7)
}

PROFILES: dict[str, dict[str, Any]] = {
    # NHWC: 13% faster per run on a 2-core CPU. The student's attack keeps the spec's 10 steps: with 5 (the
    # earlier profile) plain DFRD reached 68 % of the teacher's PGD-20 accuracy (benchmarks/results/run_cost_cpu.md)
    "cpu": {**MINIATURE, "distill.channels_last": True},
    "smoke": {**MINIATURE,
        "teacher.arch": "fmnist-cnn", "teacher.method": "pgd_at", "teacher.epochs": 1, "teacher.train_size": 512,
        "teacher.milestones": (), "teacher.attack_steps": 2, "teacher.track_per_class": 0,
        "distill.batch_size": 32, "distill.epochs": 3, "distill.warmup": 1, "distill.n_g": 2,
        "distill.n_s": 2, "distill.ib_steps": 5, "distill.probe_steps": 3, "distill.utae_steps": 3,
        "distill.eval_every": 1, "distill.snapshot_every": 1, "distill.track_per_class": 4, "distill.dfhl_n_g": 2, "distill.dfhl_hee_steps": 2,
        "distill.real_train_size": 256,
        "attack.pgd_steps": 3, "attack.cw_steps": 3, "attack.aa_per_class": 2, "attack.eval_per_class": 4, "attack.attacks": ("clean", "fgsm", "pgd", "cw"),
    },
    "paper": {
        "dataset": "cifar10", "student": "resnet18", "device": "auto",
        "teacher.arch": "wrn-34-10", "teacher.method": "trades", "teacher.epochs": 76, "teacher.milestones": (75,),
        "teacher.weight_decay": 2e-4, "teacher.train_size": 0, "teacher.attack_steps": 10,
        "attack.eps": 8 / 255, "attack.alpha": 2 / 255, "attack.aa_per_class": 0, "attack.eval_per_class": 0,
        "distill.batch_size": 256, "distill.epochs": 220, "distill.warmup": 20, "distill.n_g": 200,
        "distill.n_s": 400, "distill.ib_steps": 50, "distill.ngf": 64, "distill.aug_padding": 4, "distill.eval_every": 10,
        "distill.snapshot_every": 10, "distill.real_train_size": 0,
        "distill.amp": "bf16", "distill.channels_last": True, "distill.fused_optim": True,
        "distill.pool_on_device": True,
    },
}

# Paper profile per dataset (spec 5.10); applied only when profile == "paper".
PAPER_DATASETS: dict[str, dict[str, Any]] = {
    "cifar10": {},
    "cifar100": {"distill.batch_size": 512, "distill.epochs": 320, "distill.lr": 0.2, "distill.dfhl_lr_z": 0.015},
    "tiny_imagenet": {"teacher.arch": "preactresnet34", "teacher.method": "pgd_at", "student": "preactresnet18",
                      "distill.batch_size": 512, "distill.epochs": 220, "distill.lr": 0.2},
}

PRESETS: dict[str, dict[str, Any]] = {
    "ferd": {},
    "ferd_no_reweight": {"distill.use_reweighting": False},
    "ferd_no_fae": {"distill.use_fae": False},
    "ferd_no_utae": {"distill.gamma": 0.0},
    "ferd_no_fae_utae": {"distill.use_fae": False, "distill.gamma": 0.0},
    "dfrd_plain": {"distill.use_reweighting": False, "distill.use_fae": False, "distill.gamma": 0.0},
    "ferd_released": {"distill.class_weight_rule": "minmax", "distill.gamma": 0.0,
                      "distill.probe_teacher_mode": "train_leak"},
    "dfhl": {"distill.method": "dfhl"},
    "dfard": {"distill.method": "dfard"},
    "derd": {"distill.method": "derd"},
    "rslad": {"distill.method": "rslad"},
    "fair_rslad": {"distill.method": "fair_rslad"},
}
ABLATION_PRESETS = ("ferd", "ferd_no_reweight", "ferd_no_fae", "ferd_no_utae", "ferd_no_fae_utae")
BASELINE_PRESETS = ("dfrd_plain", "dfhl", "dfard", "derd", "rslad", "fair_rslad")
