"""Side-by-side picture: the target, then generators' samples (the demo's, wgfsim's), from saved samples.

Usage::

    python benchmarks/plot_generator_vs_demo.py TARGET_KIND OUT.png A.npy B.npy ... --labels "A" "B" ...

Each ``.npy`` holds the 5000 final samples that ``--samples`` of
``benchmarks/demo_torch.py`` or ``benchmarks/generator_quality.py`` saves.
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
    ap.add_argument("out")
    ap.add_argument("samples", nargs="+")
    ap.add_argument("--labels", nargs="+", default=None)
    args = ap.parse_args(argv)
    labels = args.labels or [pathlib.Path(p).stem for p in args.samples]
    if len(labels) != len(args.samples):
        ap.error(f"--labels: expected {len(args.samples)} labels, one per samples file, got {len(labels)}")
    panels = [("target", targets.make(**TARGETS[args.target]).sample(5000, np.random.default_rng(7)))]
    panels += [(label, np.load(p)) for label, p in zip(labels, args.samples)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.1), dpi=70)
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
