"""The training loop (spec 5.9): a tiny end-to-end run, pool growth, resume equivalence, swappable pieces."""
import math

import pytest
import torch

from ferd.config import make_config
from ferd.method.distill import Distiller, cosine_lr
from ferd.method.methods import run
from ferd.toolkit.runtime import threads


def _cfg(preset="ferd", **kw):
    return make_config("smoke", preset, overrides={"student": "fmnist-resnet", **kw})


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.dtype.is_floating_point])


def test_smoke_run_end_to_end(smoke_store, smoke_teacher):
    cfg = _cfg()
    res = run(cfg, teacher=smoke_teacher, store=smoke_store, progress=False)
    h = res.history
    assert list(h["epoch"]) == [1, 2, 3]
    assert list(h["pool_size"]) == [32, 64, 96]  # the pool grows by B per epoch (spec 10.10)
    p = h[[f"p_{c}" for c in range(10)]].to_numpy()
    assert abs(p.sum(1) - 1).max() < 1e-6 and abs(p[0] - 0.1).max() < 1e-6  # epoch 1 samples uniformly
    assert h["student_loss"].iloc[1:].notna().all() and h["student_loss"].iloc[0] != h["student_loss"].iloc[0]
    assert all(math.isfinite(v) for v in h["gen_total"])
    assert (res.run_dir / "final.pt").exists() and (res.run_dir / "history.csv").exists()
    # a second call loads the finished run instead of training again
    again = run(cfg, teacher=smoke_teacher, store=smoke_store, progress=False)
    assert torch.equal(_weights(again.student), _weights(res.student))


def test_student_loss_decreases_with_training(smoke_store, smoke_teacher):
    cfg = _cfg("dfrd_plain", n_s=12, epochs=4, warmup=1)
    d = Distiller(cfg, teacher=smoke_teacher, store=smoke_store, progress=False)
    res = d.run()
    losses = res.history["student_loss"].dropna().to_numpy()
    assert losses[-1] < losses[0]


def test_resume_gives_the_same_result(tmp_path, smoke_teacher):
    """Stop after epoch 2 (checkpoint written), restart: same final weights as an uninterrupted run."""
    from ferd.toolkit.artifacts import ArtifactStore

    cfg = _cfg()
    full = run(cfg, teacher=smoke_teacher, store=ArtifactStore(tmp_path / "a"), progress=False)
    store = ArtifactStore(tmp_path / "b")
    d = Distiller(cfg, teacher=smoke_teacher, store=store, progress=False)
    with threads(d.d.threads):  # run() trains with the configured (keyed) thread count: so must this
        for epoch in (1, 2):
            d.train_epoch(epoch)
            d.epoch = epoch
            d._save_checkpoint(d.run_dir / "checkpoint.pt")
    del d
    resumed = Distiller(cfg, teacher=smoke_teacher, store=store, progress=False).run()
    assert torch.equal(_weights(resumed.student), _weights(full.student))
    assert resumed.history.drop(columns="lr").equals(full.history.drop(columns="lr"))


def test_custom_class_weight_rule_is_used(smoke_store, smoke_teacher):
    """A notebook can pass its own rule; the loop uses it for the next epoch's labels."""
    def all_on_class_3(D):
        p = torch.zeros_like(D)
        p[3] = 1.0
        return p

    d = Distiller(_cfg(epochs=2), teacher=smoke_teacher, store=smoke_store, class_weight_rule=all_on_class_3,
                  progress=False)
    res = d.run()
    assert res.history["p_3"].iloc[1] == 1.0
    _, y = d.pool.tensors()
    assert (y[32:] == 3).all()


def test_cosine_schedule_spans():
    cfg = make_config("paper", overrides={"device": "cpu"})
    assert cosine_lr(cfg, 1) == pytest.approx(0.1)
    assert cosine_lr(cfg, 21) == pytest.approx(0.0980, abs=1e-4)  # D10: first student epoch
    cfg2 = make_config("paper", overrides={"device": "cpu", "lr_schedule_span": "student_epochs"})
    assert cosine_lr(cfg2, 21) == pytest.approx(0.1)


def test_released_probe_leaks_into_teacher_bn(smoke_store, smoke_teacher):
    """ferd_released reproduces D4: the probe's margin forward updates the teacher's BN statistics."""
    import copy

    t = copy.deepcopy(smoke_teacher)
    before = [b.clone() for n, b in t.named_buffers() if "running_mean" in n]
    Distiller(_cfg("ferd_released", epochs=2), teacher=t, store=smoke_store, progress=False).run()
    after = [b for n, b in t.named_buffers() if "running_mean" in n]
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    t2 = copy.deepcopy(smoke_teacher)
    Distiller(_cfg("ferd", epochs=2, seed=5), teacher=t2, store=smoke_store, progress=False).run()
    assert all(torch.equal(a, b) for a, b in zip(before, [b for n, b in t2.named_buffers() if "running_mean" in n]))


def test_custom_pieces_are_keyed_by_their_source(smoke_store, smoke_teacher):
    """An edited class-weight rule is a new run, not the old cached one (the key hashes the rule's source)."""
    def rule_a(D):
        return torch.softmax(D, 0)

    def rule_b(D):
        return torch.softmax(D / 2, 0)

    cfg = _cfg(epochs=2)
    dirs = {Distiller(cfg, teacher=smoke_teacher, store=smoke_store, class_weight_rule=r, progress=False).run_dir
            for r in (rule_a, rule_b, None)}
    assert len(dirs) == 3


def test_health_columns_are_logged_every_epoch(smoke_store, smoke_teacher):
    """Spec 8.0: agreement (kept batch and pool, per class), the FAE non-robust fraction and max p, per epoch."""
    res = run(_cfg(), teacher=smoke_teacher, store=smoke_store, progress=False)
    h = res.history
    for col in ("agree_kept", "agree_pool", "agree_pool_worst", "nonrobust", "max_p", "agree_pool_0"):
        assert h[col].between(0, 1).all(), col
    assert (h["agree_pool_worst"] <= h["agree_pool"]).all()
    # the pool's agreement is the teacher's on the whole pool, recomputed here from the checkpoint
    x, y = res.pool()
    with torch.no_grad():
        agree = (smoke_teacher(x).argmax(1) == y).float().mean()
    assert float(agree) == pytest.approx(h["agree_pool"].iloc[-1])
    no_fae = run(_cfg("ferd_no_fae"), teacher=smoke_teacher, store=smoke_store, progress=False).history
    assert no_fae["nonrobust"].isna().all()  # no mask without FAE


@pytest.mark.parametrize("reset", ["every_round", "never"])
def test_generator_reset_switch(smoke_teacher, smoke_store, monkeypatch, reset):
    """The release re-initialises G every round; `generator_reset = never` keeps what it learnt (issue 10)."""
    import ferd.method.distill as distill_module

    d = Distiller(_cfg(generator_reset=reset), teacher=smoke_teacher, store=smoke_store, progress=False)
    d.synthesize(1)
    after_first = {k: v.clone() for k, v in d.G.state_dict().items()}
    calls = []
    original = distill_module.reinit_generator
    monkeypatch.setattr(distill_module, "reinit_generator", lambda G, *a, **k: calls.append(1) or original(G, *a, **k))
    assert d.resets_generator(1) and d.resets_generator(2) == (reset == "every_round")
    d.reset_generator(2)
    assert len(calls) == (1 if reset == "every_round" else 0)
    kept = all(torch.equal(after_first[k], v) for k, v in d.G.state_dict().items())
    assert kept == (reset == "never")
