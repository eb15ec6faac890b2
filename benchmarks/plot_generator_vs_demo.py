"""Side-by-side picture: the target, the demo's (torch) generator and wgfsim's, from saved samples.

Usage::

    python benchmarks/plot_generator_vs_demo.py TARGET_KIND DEMO.npy OURS.npy OUT.png [--labels A B]

``DEMO.npy``/``OURS.npy`` are the 5000 final samples ``--samples`` of
``benchmarks/demo_torch.py`` and ``benchmarks/generator_quality.py`` save.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


def main(argv=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from generator_quality import TARGETS

    from wgfsim import targets

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("target", choices=tuple(TARGETS))
    ap.add_argument("demo")
    ap.add_argument("ours")
    ap.add_argument("out")
    ap.add_argument("--labels", nargs=2, default=["Deng et al.'s demo (torch)", "wgfsim (defaults)"])
    args = ap.parse_args(argv)
    panels = [("target", targets.make(**TARGETS[args.target]).sample(5000, np.random.default_rng(7)))]
    panels += [(args.labels[0], np.load(args.demo)), (args.labels[1], np.load(args.ours))]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.1), dpi=80)
    for ax, (title, pts) in zip(axes, panels):
        ax.scatter(pts[:, 0], pts[:, 1], s=0.6, alpha=0.35, c="black" if title == "target" else "tab:orange",
                   rasterized=True)
        ax.set_title(title, fontsize=9)
        ax.set_xlim(-1.25, 1.25)
        ax.set_ylim(-1.25, 1.25)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
