"""wgfsim against what a user would pick instead, on the same problems, in one process, interleaved.

Usage::

    python benchmarks/peers.py            # N = M = 2000 Sinkhorn, 1e5 x 50 directions sliced
    python benchmarks/peers.py --quick    # small sizes (a smoke run)

Peers (each skipped, with a line saying so, where it is not installed; torch and
geomloss are not wgfsim dependencies: ``pip install "wgfsim[bench]"``):

- POT, NumPy backend: ``ot.bregman.sinkhorn_log`` on the cross and self problems
  (cost ``|x - y|^2 / 2``, the same ``eps``, the same number of iterations,
  no stopping test), velocity from the two plans' barycentric maps;
  sliced: ``ot.sliced_wasserstein_distance`` (the distance only: NumPy has no gradient);
- POT, torch backend: the same calls on CPU tensors; sliced: the distance and its
  gradient by autograd, ``v = -(N/2) grad SW_2^2``;
- GeomLoss ``SamplesLoss("sinkhorn", p=2, blur=sqrt(eps), debias=True,
  backend="tensorized")``: ``v = -grad / a_i`` by autograd (its own eps-scaling
  schedule decides its iteration count; its result is the converged one).

The Sinkhorn velocity is ``v = T_xy(x) - T_xx(x)``, the barycentric maps of the
cross and self plans (docs/math.md#sinkhorn); the sliced one is that of
docs/math.md#sliced with the same directions.  "agreement" is the largest
absolute velocity difference over the largest absolute velocity of wgfsim.
Every figure is the best of ``--repeats`` wall times, the contestants taking
turns; the machine and its load average are printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def have(name):
    try:
        __import__(name)
        return True
    except ImportError:
        print(f"({name} is not installed: its rows are skipped)")
        return False


def best_of(fns, repeats):
    out, best = {}, {k: float("inf") for k in fns}
    for k, f in fns.items():
        out[k] = f()  # warm-up: compile, load caches
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            out[k] = f()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best, out


def sinkhorn_peers(x, y, eps, iters, repeats):
    import ot

    import wgfsim

    n = x.shape[0]
    a = np.full(n, 1.0 / n)
    b = np.full(y.shape[0], 1.0 / y.shape[0])

    def pot_velocity(nx_x, nx_y, nx_a, nx_b, to_numpy):
        cxy = ot.dist(nx_x, nx_y) / 2  # dense N x M: what POT computes on
        cxx = ot.dist(nx_x, nx_x) / 2
        pxy = ot.bregman.sinkhorn_log(nx_a, nx_b, cxy, eps, numItermax=iters, stopThr=0.0)
        pxx = ot.bregman.sinkhorn_log(nx_a, nx_a, cxx, eps, numItermax=iters, stopThr=0.0)
        return to_numpy((pxy @ nx_y - pxx @ nx_x) / nx_a[:, None])

    fns = {"wgfsim (numba)": lambda: wgfsim.velocity("sinkhorn", x, y, epsilon=eps, max_iter=iters, tol=1e-30)}
    fns["POT NumPy"] = lambda: pot_velocity(x, y, a, b, lambda v: v)
    if have("torch"):
        import torch

        tx, ty, ta, tb = (torch.from_numpy(v) for v in (x, y, a, b))
        fns["POT torch"] = lambda: pot_velocity(tx, ty, ta, tb, lambda v: v.numpy())
        if have("geomloss"):
            from geomloss import SamplesLoss

            loss = SamplesLoss("sinkhorn", p=2, blur=eps ** 0.5, debias=True, backend="tensorized")

            def geomloss_velocity():
                xt = torch.from_numpy(x).clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(loss(xt, ty), [xt])
                return (-grad / ta[:, None]).numpy()

            fns["GeomLoss tensorized"] = geomloss_velocity
    return best_of(fns, repeats)


def sliced_peers(x, y, n_dir, repeats):
    import ot

    from wgfsim.flows import sliced

    theta = sliced.directions(np.random.default_rng(1), n_dir, x.shape[1])
    n = x.shape[0]
    fns = {"wgfsim (numba)": lambda: sliced._cpu_velocity(x, y, theta)[0]}
    fns["POT NumPy (distance only)"] = lambda: ot.sliced_wasserstein_distance(x, y, projections=theta.T)
    if have("torch"):
        import torch

        ty, tth = torch.from_numpy(y), torch.from_numpy(theta.T.copy())

        def pot_torch():
            xt = torch.from_numpy(x).clone().requires_grad_(True)
            sw2 = ot.sliced_wasserstein_distance(xt, ty, projections=tth) ** 2
            (grad,) = torch.autograd.grad(sw2, [xt])
            return (-(n / 2) * grad).numpy()

        fns["POT torch + autograd"] = pot_torch
    return best_of(fns, repeats)


def report(title, best, out, ref_key):
    ref = out[ref_key]
    print(f"\n{title}")
    print("| implementation | time (s) | vs wgfsim | agreement |")
    print("| --- | --- | --- | --- |")
    for k, t in best.items():
        v = out[k]
        agree = "-" if np.ndim(v) == 0 else f"{np.abs(v - ref).max() / np.abs(ref).max():.1e}"
        print(f"| {k} | {t:.3f} | {t / best[ref_key]:.1f}x | {agree} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    from wgfsim import targets

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          "load average %.2f, %.2f, %.2f" % os.getloadavg())
    rng = np.random.default_rng(0)
    n, iters, eps = (500, 50, 0.1) if args.quick else (2000, 100, 0.1)
    y = targets.make("eight_gaussians").draw(n, rng)
    x = rng.normal(size=(n, 2))
    best, out = sinkhorn_peers(x, y, eps, iters, args.repeats)
    report(f"Sinkhorn velocity, N = M = {n}, eps = {eps}, {iters} iterations, x ~ N(0, I), y ~ eight_gaussians",
           best, out, "wgfsim (numba)")
    ns, n_dir = (20_000, 20) if args.quick else (100_000, 50)
    xs, ys = rng.normal(size=(ns, 2)), targets.make("eight_gaussians").draw(ns, rng)
    best, out = sliced_peers(xs, ys, n_dir, args.repeats)
    report(f"Sliced velocity, N = M = {ns}, {n_dir} directions, 2-D", best, out, "wgfsim (numba)")
    print("\nload average %.2f, %.2f, %.2f at the end" % os.getloadavg())


if __name__ == "__main__":
    main()
