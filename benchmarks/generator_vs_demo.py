"""Step time of wgfsim's generator against Deng et al.'s toy demo (PyTorch), same machine, interleaved.

Usage::

    python benchmarks/generator_vs_demo.py              # 2 threads each, 40 timed steps each
    python benchmarks/generator_vs_demo.py --threads 1 --steps 20

Both train the demo's network at its sizes on the swiss roll: latent 32,
plain MLP 32-256-256-256-2 (SiLU; torch's default init), batch 2048, 2048
fresh target rows per step, Adam at 1e-3, float32, ``drift_da2`` at
temperature 0.05 (``benchmarks/demo_torch.py`` is the peer).  The two take
turns in blocks of 5 steps, so a change of the machine's load hits both;
the figure is the median step time of each and their ratio.  Without torch
the script times wgfsim alone and says so.  Set the thread count before
import: ``--threads`` sets ``NUMBA_NUM_THREADS``, ``OMP_NUM_THREADS`` and
``OPENBLAS_NUM_THREADS`` for this process and ``torch.set_num_threads``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import sys
import time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args(argv)
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    import numpy as np

    from wgfsim import Field, targets
    from wgfsim.methods.generator import MLPConfig, TrainConfig, init, step

    tgt = targets.make("swiss_roll")
    cfg = TrainConfig(mlp=MLPConfig(out_dim=2, latent_dim=32, width=256, depth=3, architecture="mlp", init="torch"),
                      learning_rate=1e-3, batch_size=2048, minibatch=2048, fresh_target=True)
    rng = np.random.default_rng(0)
    state = {"s": init(cfg, tgt.sample(2048, rng), Field("drift_da2", temperatures=0.05, rng=np.random.default_rng(1)),
                       rng, dtype=np.float32, sampler=tgt.sample)}

    def ours():
        state["s"], _ = step(state["s"], cfg)

    contestants = {"wgfsim": ours}
    try:
        import torch

        from demo_torch import build, make_step

        torch.set_num_threads(args.threads)
        model = build(0)
        contestants["demo (torch)"] = make_step(model, torch.optim.Adam(model.parameters(), lr=1e-3), tgt.sample,
                                                np.random.default_rng(2), 2048, 2048, 32, 0.05)
    except ImportError:
        print("torch is not installed: the demo's column is skipped")
    for fn in contestants.values():
        for _ in range(args.warmup):
            fn()
    times = {k: [] for k in contestants}
    load0 = os.getloadavg()[0]
    for _ in range(max(1, args.steps // 5)):
        for name, fn in contestants.items():
            for _ in range(5):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    med = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {load0:.1f} -> {os.getloadavg()[0]:.1f}; threads {args.threads}")
    for name, ms in med.items():
        print(f"{name:14s} median step {ms:7.1f} ms over {len(times[name])} steps")
    if len(med) == 2:
        print(f"demo / wgfsim: {med['demo (torch)'] / med['wgfsim']:.2f}x")


if __name__ == "__main__":
    main()
