"""``python -m experiments``: list the experiments, or run them.

Usage::

    python -m experiments                      # list
    python -m experiments all [--quick] [--seed N] [--out DIR] [--readme-figures docs/figures]
    python -m experiments <name> [args...]     # same as python -m experiments.<name>

With ``all``, each experiment writes to ``DIR/<name>`` (default ``out/<name>``);
``--readme-figures DIR`` then copies the README's PNGs (``README_FIGURES``) to DIR.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import time

from vikl.experiments import EXPERIMENTS
from vikl.experiments._common import command_prefix

#: The PNGs shown in the README, per experiment (copied by ``--readme-figures``).
README_FIGURES = {
    "mode_seeking": ["mode_seeking.png"],
    "mode_seeking_2d": ["mode_seeking_2d.png"],
    "mean_field": ["mean_field.png"],
    "alpha_sweep": ["alpha_sweep.png"],
    "distance_vs_divergence": ["distance_vs_divergence.png"],
    "coin_llr": ["coin_llr.png"],
    "coding": ["coding.png"],
    "surprise": ["surprise.png"],
    "classifier": ["classifier.png"],
    "vae_digits": ["vae_digits_latent.png"],
}


def _list() -> None:
    width = max(map(len, EXPERIMENTS))
    cmd = command_prefix()
    print(f"Experiments (run one with: {cmd}.<name> [--out DIR] [--seed N] [--quick]):\n")
    for name, summary in EXPERIMENTS.items():
        print(f"  {name:<{width}}  {summary}")
    print(f"\nRun them all with: {cmd} all [--quick]")


def _run_all(argv) -> int:
    parser = argparse.ArgumentParser(prog=f"{command_prefix()} all",
                                     description="Runs every experiment in turn.")
    parser.add_argument("--out", default="out", help="root directory (default: out); each writes to OUT/<name>")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--only", default=None, help="comma-separated subset of names")
    parser.add_argument("--readme-figures", default=None, metavar="DIR",
                        help="copy the README's PNGs to DIR afterwards (e.g. docs/figures)")
    args = parser.parse_args(argv)
    names = list(EXPERIMENTS) if args.only is None else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        parser.error(f"unknown experiment(s) {unknown}; choose from {list(EXPERIMENTS)}")
    t0 = time.perf_counter()
    for name in names:
        module = importlib.import_module(f"vikl.experiments.{name}")
        sub = ["--out", os.path.join(args.out, name), "--seed", str(args.seed)]
        sub += ["--quick"] if args.quick else []
        sub += [] if args.progress else ["--no-progress"]
        module.main(sub)
        if args.readme_figures:
            os.makedirs(args.readme_figures, exist_ok=True)
            for png in README_FIGURES.get(name, []):
                shutil.copyfile(os.path.join(args.out, name, png), os.path.join(args.readme_figures, png))
                print(f"copied {png} to {args.readme_figures}")
    print(f"ran {len(names)} experiments in {time.perf_counter() - t0:.1f} s")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("list", "-h", "--help"):
        _list()
        return 0
    if argv[0] == "all":
        return _run_all(argv[1:])
    if argv[0] in EXPERIMENTS:
        importlib.import_module(f"vikl.experiments.{argv[0]}").main(argv[1:])
        return 0
    print(f"unknown experiment {argv[0]!r}; choose from: {', '.join(EXPERIMENTS)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
