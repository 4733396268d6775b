"""The pieces of FERD's loop that bench_steps.py times (spec 5.9, 5.11), each a `Piece` built on a `Distiller`.

A piece is `fn(state)` with an untimed `setup() -> state`; the generator-step parts mirror `ferd_round`'s step
body with the library's own functions, and the whole steps call the library (`Distiller.synthesize`,
`Distiller.student_step`, `Distiller.probe`), so they time exactly what the loop runs.
"""
from __future__ import annotations

import sys
from typing import Any, Callable

import torch
import torch.nn.functional as F
from measure import FlopCount

from ferd.book.experiments import build_attacks
from ferd.method.distill import Distiller
from ferd.method.fae import ib_fit, robust_mask, uniformity_loss
from ferd.method.losses import ikl, onehot_prior, student_loss, teacher_prior
from ferd.method.synthesis import SynthesisResult, frozen, sample_labels
from ferd.toolkit.augment import augment


class Piece:
    def __init__(self, name: str, group: str, fn: Callable[[Any], Any], setup: Callable[[], Any] | None = None,
                 precision: str = "float32", images: int = 0, note: str = "", scale: float = 1.0):
        self.name, self.group, self.fn, self.setup = name, group, fn, setup
        self.precision, self.images, self.note, self.scale = precision, images, note, scale


def generator_pieces(d: Distiller, gen_steps: int, amp: str) -> list[Piece]:
    """The parts of one generator step (spec 5.9 generation stage) and the whole step through `ferd_round`."""
    dd, dev, B = d.d, d.device, d.d.batch_size
    T, S, bn, G = d.fast.teacher_gen, d.fast.student_gen, d.bn, d.G
    prec = "bfloat16" if amp == "bf16" else "float32"
    y = sample_labels(d.p, B).to(dev)
    z = torch.randn(B, dd.nz, device=dev, requires_grad=True)
    opt = torch.optim.Adam([{"params": G.parameters(), "lr": dd.lr_g}, {"params": [z], "lr": dd.lr_z}],
                           betas=(0.5, 0.999))
    T.eval()
    S.eval()
    G.train()

    def teacher_bn(_: Any) -> dict[str, torch.Tensor]:
        x = G(z)
        xh = augment(x, padding=dd.aug_padding)
        with bn.recording():
            Z = T.features(xh)
            t = T.head(Z)
        return {"x": x, "xh": xh, "Z": Z, "t": t, "l_bn": bn.loss(), "l_oh": F.cross_entropy(t, y)}

    def student_adv(s: dict[str, torch.Tensor]) -> torch.Tensor:
        return -ikl(S(s["xh"]), s["t"], teacher_prior(s["t"], dd.ikl_T2))

    def fit(s: dict[str, torch.Tensor]) -> torch.Tensor:
        return ib_fit(T.head, s["Z"].detach(), y, steps=dd.ib_steps, lr=dd.ib_lr, beta=dd.ib_beta, noise=dd.ib_noise)

    def with_mask(s: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**s, "s_star": fit(s)}

    def uniformity(s: dict[str, torch.Tensor]) -> torch.Tensor:
        return uniformity_loss(T.head, s["Z"], robust_mask(s["s_star"], s["Z"].detach()))

    def full_loss(_: Any) -> torch.Tensor:
        s = with_mask(teacher_bn(None))
        w_bn, w_adv, w_oh, w_uni = dd.gen_loss_weights
        return w_bn * s["l_bn"] + w_adv * student_adv(s) + w_oh * s["l_oh"] + w_uni * uniformity(s)

    def backward_step(loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def round_steps(_: Any) -> None:
        d.synthesize(epoch=1)

    dd.n_g = gen_steps
    frozen_ctx = frozen(d.teacher, d.student)
    frozen_ctx.__enter__()  # the generator stage freezes both networks (spec 5.2); ferd_round does the same
    return [
        Piece("gen.teacher_fwd+bn_loss", "gen", teacher_bn, None, prec, B, "G, augment, teacher features+head, BN hooks"),
        Piece("gen.ib_fit", "gen", fit, lambda: teacher_bn(None), prec, B, f"{dd.ib_steps} Adam steps, head fwd+bwd"),
        Piece("gen.uniformity", "gen", uniformity, lambda: with_mask(teacher_bn(None)), prec, B, "mask + head on Z_nr"),
        Piece("gen.student_fwd+adv", "gen", student_adv, lambda: teacher_bn(None), prec, B, "student forward, -IKL"),
        Piece("gen.backward+step", "gen", backward_step, lambda: full_loss(None), prec, B,
              "one backward through teacher, student, G; Adam"),
        Piece("gen.step", "gen", round_steps, None, prec, B, f"ferd_round with {gen_steps} steps, per step",
              scale=1.0 / gen_steps),
    ], frozen_ctx


def student_pieces(d: Distiller, amp: str) -> list[Piece]:
    """The parts of one student step (spec 5.7-5.9) and the whole `Distiller.student_step`."""
    dd, B = d.d, d.d.batch_size
    prec = "bfloat16" if amp == "bf16" else "float32"

    def target(_: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = d.next_batch()
        x_f = augment(x, padding=dd.aug_padding)
        with torch.no_grad():
            t = d.teacher(x_f)
        return x_f, y, t

    def utae(s: tuple) -> torch.Tensor:
        return d.make_attack(2, 0)(s[0], s[2])

    def with_adv(_: Any) -> tuple:
        x_f, y, t = target(None)
        return x_f, y, t, utae((x_f, y, t))

    def update(s: tuple) -> None:
        x_f, y, t, x_u = s
        d.student.train()
        prior = onehot_prior(y, d.C) if dd.ikl_mode == "onehot" else teacher_prior(t, dd.ikl_T2)
        out = student_loss(*d.fast.student_views(x_f, x_u), t, prior, dd.lambda_clean, dd.lambda_adv)
        d._backward(out.total, 2, 0)

    return [
        Piece("student.teacher_target", "student", target, None, "float32", B, "pool batch, augment, teacher fwd"),
        Piece("student.utae", "student", utae, lambda: target(None), "float32", B, f"{dd.utae_steps} student fwd+bwd"),
        Piece("student.update", "student", update, lambda: with_adv(None), prec, B, "2 student fwd, bwd, SGD"),
        Piece("student.step", "student", lambda _: d.student_step(2, 0), None, prec, B, "Distiller.student_step"),
    ]


def probe_piece(d: Distiller, cap: int | None) -> list[Piece]:
    dd, B, dev = d.d, d.d.batch_size, d.device
    full = dd.probe_steps
    if cap:
        dd.probe_steps = min(full, cap)
    g = torch.Generator(device=dev).manual_seed(0)
    x = torch.rand(B, d.nc, d.img_size, d.img_size, device=dev, generator=g)
    res = SynthesisResult(x, sample_labels(d.p, B).to(dev), x, {})
    scale = full / dd.probe_steps if dd.probe_steps else 1.0
    return [Piece(f"probe.pgd{full}", "probe", lambda _: d.probe(res, 1), None, "float32", B,
                  f"PGD-{full} on the teacher + margins" + (f" (ran {dd.probe_steps} steps, scaled)" if scale != 1 else ""),
                  scale=scale)]


def eval_pieces(d: Distiller, cfg: Any, batch: int, aa: bool, cap: int | None) -> list[Piece]:
    names = [n for n in ("clean", "fgsm", "pgd", "cw") if n in cfg.attack.attacks or n == "clean"] + (["aa"] if aa else [])
    full = {"pgd": cfg.attack.pgd_steps, "cw": cfg.attack.cw_steps}
    if cap:
        cfg.attack.pgd_steps, cfg.attack.cw_steps = min(full["pgd"], cap), min(full["cw"], cap)
    model = d.student.eval()
    g = torch.Generator(device=d.device).manual_seed(1)
    x = torch.rand(batch, d.nc, d.img_size, d.img_size, device=d.device, generator=g)
    y = torch.randint(0, d.C, (batch,), device=d.device, generator=g)
    pieces = []
    for name in names:
        try:
            atk = build_attacks(cfg, model, (name,))[name]
        except ImportError as err:  # pyautoattack missing
            print(f"skipping {name}: {err}", file=sys.stderr)
            continue

        def run(_: Any, atk: Any = atk) -> torch.Tensor:
            with torch.no_grad():
                return model(atk(x, y)).argmax(1)

        run_steps = {"pgd": cfg.attack.pgd_steps, "cw": cfg.attack.cw_steps}.get(name)
        scale = full[name] / run_steps if run_steps else 1.0
        pieces.append(Piece(f"eval.{name}", "eval", run, None, "float32", batch,
                            repr(atk) + (" (scaled)" if scale != 1 else ""), scale=scale))
    return pieces


def forward_flops(d: Distiller) -> dict[str, int]:
    """Forward FLOPs of each network on one batch: the terms of the analytical floor (README)."""
    B, dev = d.d.batch_size, d.device
    x = torch.rand(B, d.nc, d.img_size, d.img_size, device=dev)
    out = {}
    with torch.no_grad():
        for name, fn in (("teacher", d.teacher), ("student", d.student), ("head", None),
                         ("generator", lambda _: d.G(torch.randn(B, d.d.nz, device=dev)))):
            if name == "head":
                Z = d.teacher.features(x)
                fn = d.teacher.head
                inp = Z
            else:
                inp = x
            with FlopCount() as c:
                fn(inp)
            out[name] = c.total
    return out


def floor_flops(f: dict[str, int], dd: Any) -> dict[str, int]:
    """FLOPs the passes of each step must do: a backward to the input costs about one forward, a backward that
    also needs weight gradients about two (spec 5.11)."""
    T, S, H, G = f["teacher"], f["student"], f["head"], f["generator"]
    return {"gen.step": 3 * G + 2 * T + 2 * S + 2 * dd.ib_steps * H + 2 * H,
            "student.step": T + 2 * dd.utae_steps * S + 2 * 3 * S,
            "probe": (2 * dd.probe_steps + 1) * T}
