"""The generator at Deng et al.'s toy-demo sizes: final quality of one configuration and seed.

Usage::

    python benchmarks/generator_quality.py --target swiss_roll --architecture mlp --init torch \
        --depth 3 --seed 0 --steps 2000 --out outputs/quality/mlp_torch_s0.json

The run is the demo's configuration expressed with wgfsim's options: field
``drift_da2`` (temperature 0.05, euclidean cost, plain temperatures), latent
32, width 256, batch 2048, 2048 fresh target rows per step
(``fresh_target``), Adam at ``lr = 1e-3`` (constant unless ``--schedule
cosine``), float32.  Targets: ``swiss_roll`` (the demo's) and the demo's
checkerboard (wgfsim's ``checkerboard`` at scale 0.25, noise 0.2: 8 squares
of side 0.5 in ``[-1, 1]^2`` with jitter 0.05).

The score (the honest one, not one snapshot of one latent set): after the
last step, ``--eval-sets`` independent pairs (``eval_n`` generated samples on
fresh latents, ``eval_n`` fresh reference rows) give MMD^2 at bandwidth 0.05
(the swiss roll's arm width) and at the median bandwidth; the JSON holds each
set's values, their mean and standard deviation, and the two-sample noise
floor measured the same way with a fresh target sample in place of the
generator's.  The wall time of the training loop and the median step time
are stored too.  ``--samples PATH`` saves 5000 final samples (.npy) for
pictures.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from wgfsim import Field, metrics, targets  # noqa: E402
from wgfsim.methods.generator import MLPConfig, TrainConfig, init, samples, step  # noqa: E402

TARGETS = {
    "swiss_roll": dict(kind="swiss_roll"),
    "checkerboard": dict(kind="checkerboard", scale=0.25, noise=0.2),
}
BANDWIDTH = 0.05


def score(draw_x, draw_ref, sets: int) -> dict:
    """MMD^2 at bandwidth 0.05 and at the median, over ``sets`` independent (x, ref) pairs."""
    narrow, median = [], []
    for k in range(sets):
        x, ref = draw_x(k), draw_ref(k)
        narrow.append(metrics.mmd2(x, ref, bandwidth=BANDWIDTH))
        median.append(metrics.mmd2(x, ref))
    return {"mmd2_bw005": narrow, "mmd2_median": median,
            "mmd2_bw005_mean": float(np.mean(narrow)), "mmd2_bw005_std": float(np.std(narrow, ddof=1)),
            "mmd2_median_mean": float(np.mean(median)), "mmd2_median_std": float(np.std(median, ddof=1))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", choices=tuple(TARGETS), default="swiss_roll")
    ap.add_argument("--architecture", default="mlp")
    ap.add_argument("--init", default="torch")
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--latent", type=int, default=32)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--minibatch", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--schedule", default="constant")
    ap.add_argument("--ema", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-n", type=int, default=2000)
    ap.add_argument("--eval-sets", type=int, default=8)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--out", default=None)
    ap.add_argument("--samples", default=None)
    args = ap.parse_args(argv)

    metrics.mmd2(np.zeros((2, 2)), np.ones((2, 2)), bandwidth=BANDWIDTH)  # load every module the score needs now
    tgt = targets.make(**TARGETS[args.target])
    cfg = TrainConfig(
        mlp=MLPConfig(out_dim=2, latent_dim=args.latent, width=args.width, depth=args.depth,
                      architecture=args.architecture, init=args.init),
        learning_rate=args.lr, batch_size=args.batch, minibatch=args.minibatch, lr_schedule=args.schedule,
        total_steps=args.steps, ema_decay=args.ema, fresh_target=True,
    )
    seq = np.random.SeedSequence([args.seed, 20])
    r_train, r_field, r_eval = (np.random.default_rng(s) for s in seq.spawn(3))
    sample = tgt.sample(args.minibatch, r_train)  # only its shape and digest matter with fresh rows
    field = Field("drift_da2", temperatures=0.05, cost="euclidean", rng=r_field, backend="auto")
    state = init(cfg, sample, field, r_train, dtype=np.dtype(args.dtype), sampler=tgt.sample)
    times = []
    t_start = time.perf_counter()
    for _ in range(args.steps):
        t0 = time.perf_counter()
        state, loss = step(state, cfg)
        times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t_start

    zs = [r_eval.standard_normal((args.eval_n, args.latent)) for _ in range(args.eval_sets)]
    refs = [tgt.sample(args.eval_n, r_eval) for _ in range(args.eval_sets)]
    floor_x = [tgt.sample(args.eval_n, r_eval) for _ in range(args.eval_sets)]
    ours = score(lambda k: np.asarray(samples(state, zs[k]), dtype=np.float64), lambda k: refs[k], args.eval_sets)
    floor = score(lambda k: floor_x[k], lambda k: refs[k], args.eval_sets)
    out = {
        "args": vars(args), "wall_s": wall, "step_ms_median": 1e3 * float(np.median(times[1:])),
        "final_loss": loss, "score": ours, "floor": floor,
        "ratio_bw005": ours["mmd2_bw005_mean"] / floor["mmd2_bw005_mean"],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
    }
    print(json.dumps({k: out[k] for k in ("wall_s", "step_ms_median", "ratio_bw005")}),
          f"mmd2(0.05)={ours['mmd2_bw005_mean']:.3g}+-{ours['mmd2_bw005_std']:.2g}",
          f"floor={floor['mmd2_bw005_mean']:.3g}", f"median-bw={ours['mmd2_median_mean']:.3g}")
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(json.dumps(out, indent=1))
    if args.samples:
        x = np.asarray(samples(state, np.random.default_rng(99).standard_normal((5000, args.latent))))
        np.save(args.samples, x)


if __name__ == "__main__":
    main()
