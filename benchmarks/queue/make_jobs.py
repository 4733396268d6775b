"""The runs the `cpu` book needs, as a queue for benchmarks/queue/worker.sh, most valuable first: the headline pair
(FERD, plain DFRD) over seeds, the second student, the ablations over seeds, the baselines, the released code,
the gamma and tau sweeps, then the AutoAttack evaluations (100 images per class at every seed: about 10 minutes of
one core per model, measured on plain DFRD; `benchmarks/results/queue_times_cpu.md`),
and last the two chapters that compute more than these runs: chapter 3 trains FERD with rules written in the
notebook (its sqrt rule; the oracle weights at 3 seeds, some 2.5 hours of one core), chapter 8 attacks the headline
runs at five budgets (the worker executes them without building the book).

Each line trains (or loads) a run and evaluates it with the `ferd` CLI, exactly as the chapters' configurations
do (the same presets, students, seeds and overrides; evaluations are cached per attack), so `ferd book` later
finds everything in the store. Print the queue: python benchmarks/queue/make_jobs.py > $HOME/queue/jobs.txt
"""
NOAA = "--set attack.attacks=clean,fgsm,pgd,cw"
jobs = []
def job(name, preset, student, seed, extra=NOAA):
    jobs.append(f"{name} evaluate --profile cpu --preset {preset} --student {student} --seed {seed} {extra}")
R, M = "fmnist-resnet", "fmnist-mobilenet"
for s in range(5):
    for p in ("ferd", "dfrd_plain"):
        job(f"{p}_{R}_s{s}", p, R, s)
for s in range(3):
    for p in ("ferd", "dfrd_plain"):
        job(f"{p}_{M}_s{s}", p, M, s)
jobs.append("teacher evaluate --profile cpu --teacher")  # every attack, AutoAttack on 50 per class (chapters 1-3, 6)
for st in (R, M):  # chapter 6's "which checkpoint?" section: the best-clean student, without AutoAttack
    job(f"ferd_bestclean_{st}_s0", "ferd", st, 0, NOAA + " --which best_clean")
for s in range(3):
    for p in ("ferd_no_reweight", "ferd_no_fae", "ferd_no_utae", "ferd_no_fae_utae"):
        job(f"{p}_{R}_s{s}", p, R, s)
for st in (R, M):
    for p in ("dfhl", "dfard", "derd", "rslad", "fair_rslad"):
        job(f"{p}_{st}_s0", p, st, 0)
for s in range(3):
    job(f"ferd_released_{R}_s{s}", "ferd_released", R, s)
for g in (0.1, 0.5, 0.7, 0.9):
    job(f"ferd_gamma{g}_{R}_s0", "ferd", R, 0, NOAA + f" --set gamma={g}")
job(f"ferd_tau2_{R}_s0", "ferd", R, 0, NOAA + " --set class_weight_tau=2.0")
for st, seeds in ((R, range(5)), (M, range(3))):
    for s in seeds:
        for p in ("ferd", "dfrd_plain"):
            n = 100  # chapter 6's aa_headline_per_class and aa_seed_per_class
            job(f"aa{n}_{p}_{st}_s{s}", p, st, s, f"--set attack.attacks=aa --set attack.aa_per_class={n}")
for chapter in ("03", "08"):
    jobs.append(f"ch{chapter}_book book --profile cpu --only {chapter}")
print("\n".join(jobs))
