"""Deng et al.'s toy drifting demo as a PyTorch peer, written from its published configuration.

Optional (torch is not a wgfsim dependency: ``pip install "wgfsim[bench]"``);
without torch the script prints one line and exits 0.

The configuration (the authors' notebook ``drifting_model_demo.ipynb``,
``train_toy(steps=2000, lr=1e-3, temp=0.05)``): per step 2048 fresh target
rows and 2048 generated samples from latents ``z ~ N(0, I_32)``; the
generator ``nn.Sequential`` of Linear 32-256, SiLU, Linear 256-256, SiLU,
Linear 256-256, SiLU, Linear 256-2 with torch's default initialisation;
``torch.optim.Adam(lr=1e-3)``, constant; float32; the loss ``mean((G(z) -
stopgrad(G(z) + V))^2)`` with the drift of one temperature ``T = 0.05``
(docs/math.md#drift-da2, plain temperatures)::

    K = exp(-|x_i - c_j| / T) over the columns c = [X | Y], K_ii = 0 (self masked)
    A = K / sqrt(rowsum(K) colsum(K))
    V = (A+ rowsum(A-)) Y - (A- rowsum(A+)) X

This is an independent implementation of that formula (the notebook's code
is not copied).  Targets are wgfsim's samplers (``swiss_roll``, the demo's;
``checkerboard`` at scale 0.25, noise 0.2, the demo's checkerboard), scored
with ``benchmarks/generator_quality.py``'s :func:`score`.

Usage::

    python benchmarks/demo_torch.py --target swiss_roll --seed 0 --out outputs/quality/demo_sr_s0.json
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
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


def build(seed: int, latent: int = 32, width: int = 256, depth: int = 3):
    import torch

    torch.manual_seed(seed)
    layers, fan_in = [], latent
    for _ in range(depth):
        layers += [torch.nn.Linear(fan_in, width), torch.nn.SiLU()]
        fan_in = width
    layers.append(torch.nn.Linear(fan_in, 2))
    return torch.nn.Sequential(*layers)


def drift(x, y, temperature: float):
    """The drift V (G, d) of generated ``x`` (G, d) against targets ``y`` (P, d), one temperature."""
    import torch

    g = x.shape[0]
    cols = torch.cat([x, y], dim=0)  # (G+P, d)
    k = torch.exp(-torch.cdist(x, cols) / temperature)  # (G, G+P)
    k[:, :g].fill_diagonal_(0.0)  # the self pair: exp(-inf)
    a = k / torch.sqrt(k.sum(dim=1, keepdim=True) * k.sum(dim=0, keepdim=True)).clamp_min(1e-12)
    a_neg, a_pos = a[:, :g], a[:, g:]
    return (a_pos * a_neg.sum(dim=1, keepdim=True)) @ y - (a_neg * a_pos.sum(dim=1, keepdim=True)) @ x


def make_step(model, opt, sampler, rng, batch: int, rows: int, latent: int, temperature: float):
    """One demo step: fresh rows from ``sampler(n, rng)`` (NumPy), fresh latents from torch's generator."""
    import torch

    def one():
        y = torch.from_numpy(sampler(rows, rng).astype(np.float32))
        x = model(torch.randn(batch, latent))
        with torch.no_grad():
            target = x + drift(x, y, temperature)
        loss = torch.nn.functional.mse_loss(x, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return one


def main(argv=None):
    try:
        import torch
    except ImportError:
        print("torch is not installed: the demo peer is skipped")
        return
    from generator_quality import TARGETS, score

    from wgfsim import targets

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", choices=tuple(TARGETS), default="swiss_roll")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-n", type=int, default=2000)
    ap.add_argument("--eval-sets", type=int, default=8)
    ap.add_argument("--out", default=None)
    ap.add_argument("--samples", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from wgfsim import metrics

    metrics.mmd2(np.zeros((2, 2)), np.ones((2, 2)), bandwidth=0.05)  # load every module the score needs now
    tgt = targets.make(**TARGETS[args.target])
    model = build(args.seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    r_train, r_eval = (np.random.default_rng(s) for s in np.random.SeedSequence([args.seed, 21]).spawn(2))
    one = make_step(model, opt, tgt.sample, r_train, 2048, 2048, 32, 0.05)
    times = []
    t_start = time.perf_counter()
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = one()
        times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t_start
    if args.samples:  # first: the training is the expensive part
        with torch.no_grad():
            x = model(torch.randn(5000, 32, generator=torch.Generator().manual_seed(99))).numpy()
        np.save(args.samples, x)

    def gen(k):
        g = torch.Generator().manual_seed(1000 + k)
        with torch.no_grad():
            return model(torch.randn(args.eval_n, 32, generator=g)).double().numpy()

    refs = [tgt.sample(args.eval_n, r_eval) for _ in range(args.eval_sets)]
    floor_x = [tgt.sample(args.eval_n, r_eval) for _ in range(args.eval_sets)]
    ours = score(gen, lambda k: refs[k], args.eval_sets)
    floor = score(lambda k: floor_x[k], lambda k: refs[k], args.eval_sets)
    out = {"args": vars(args), "wall_s": wall, "step_ms_median": 1e3 * float(np.median(times[1:])), "final_loss": loss,
           "score": ours, "floor": floor, "ratio_bw005": ours["mmd2_bw005_mean"] / floor["mmd2_bw005_mean"],
           "torch": torch.__version__,
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"}
    print(json.dumps({k: out[k] for k in ("wall_s", "step_ms_median", "ratio_bw005")}),
          f"mmd2(0.05)={ours['mmd2_bw005_mean']:.3g}+-{ours['mmd2_bw005_std']:.2g}",
          f"floor={floor['mmd2_bw005_mean']:.3g}", f"median-bw={ours['mmd2_median_mean']:.3g}")
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
