"""The gradient-spike clip of ``fit``'s converge-mode optimizer, measured on posteriordb posteriors.

For each posterior, Gaussian family and dtype, ``vikl.fit(q0, logdensity, key=key)`` with no
``num_steps`` (everything default: the initializer, the stopping rule, at most 100,000 steps)
runs twice: with the default optimizer ``vikl.preconditioned_adam()``, whose chain starts with
``vikl.clip_gradient_spikes()``, and with the same chain without the clip. Printed per fit: the
steps run, whether the rule held, the gradients clipped, the median of the per-step loss over
each tenth of the run (a jump shows the fit thrown out of its basin), the 10,000-draw ELBO
(float64, fixed draws, as ``benchmarks.posteriors``) and the PSIS k-hat. ``q0`` and the keys are
``benchmarks.posteriors``' (seed 0). A fit that raises prints its error.

Run:  python -m benchmarks.spike_clip [--posteriors a,b] [--families fr,mf] [--dtypes float64,float32]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import optax

import vikl
from benchmarks import posteriordb as pdb
from benchmarks._common import fmt, machine_line, markdown_table
from benchmarks.posteriors import Evaluator, _gauss_of, _q0, _x64
from vikl._fit_result import _num_clipped
from vikl._optimizers import _scale_by_initial_sd

POSTERIORS = (
    "mcycle_gp-accel_gp",
    "kilpisjarvi_mod-kilpisjarvi",
    "earnings-earn_height",
    "mesquite-logmesquite_logvas",
    "bball_drive_event_0-hmm_drive_0",
    "hudson_lynx_hare-lotka_volterra",
)
OUT = Path(__file__).resolve().parent / "results" / "spike_clip.md"
_UNCLIPPED = optax.chain(optax.scale_by_adam(), _scale_by_initial_sd(), optax.scale(-1e-2))


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.spike_clip",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    ap.add_argument("--posteriors", default=",".join(POSTERIORS), help="comma-separated posteriordb names")
    ap.add_argument("--families", default="fr,mf", help="comma-separated: fr (full rank), mf (mean field)")
    ap.add_argument("--dtypes", default="float64,float32", help="comma-separated: float64,float32")
    ap.add_argument("--out", default=str(OUT), help="markdown table ('' for none)")
    args = ap.parse_args(argv)
    print(machine_line(), flush=True)
    rows = []
    for name in args.posteriors.split(","):
        post = pdb.load(name, with_draws=False)
        ev = Evaluator(post, 10_000, seed=20_221)
        for dtype in args.dtypes.split(","):
            for fam in args.families.split(","):
                for label, opt in (("default (clip)", None), ("no clip", _UNCLIPPED)):
                    with _x64(dtype), warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        t0 = time.perf_counter()
                        try:
                            res = vikl.fit(
                                _q0(post, fam, dtype, 0),
                                post.logdensity,
                                optimizer=opt,
                                key=jax.random.key(1),
                                progress=False,
                            )
                        except vikl.FitDivergedError as err:
                            rows.append(
                                [
                                    name,
                                    dtype,
                                    fam,
                                    label,
                                    "-",
                                    "-",
                                    "-",
                                    str(err).split(".")[0][:90],
                                    "-",
                                    "-",
                                    fmt(time.perf_counter() - t0),
                                ]
                            )
                            print(" | ".join(str(c) for c in rows[-1]), flush=True)
                            continue
                        seconds = time.perf_counter() - t0
                        m = ev.gaussian(*_gauss_of(res.unconstrained_distribution))
                    losses = np.asarray(res.losses, np.float64)
                    tenth = max(1, losses.size // 10)
                    medians = " ".join(f"{np.median(losses[i : i + tenth]):.4g}" for i in range(0, losses.size, tenth))
                    rows.append(
                        [
                            name,
                            dtype,
                            fam,
                            label,
                            res.num_steps,
                            "yes" if res.converged else "no",
                            _num_clipped(res.opt_state) if opt is None else "-",
                            medians,
                            fmt(m["elbo"], 6),
                            fmt(m["khat"]),
                            fmt(seconds),
                        ]
                    )
                    print(" | ".join(str(c) for c in rows[-1]), flush=True)
        jax.clear_caches()
    table = markdown_table(
        [
            "posterior",
            "dtype",
            "family",
            "optimizer",
            "steps",
            "converged",
            "clipped",
            "median loss per tenth of the run",
            "ELBO (10k draws)",
            "k-hat",
            "s (first call)",
        ],
        rows,
    )
    print(table)
    if args.out:
        cmd = "python -m benchmarks.spike_clip " + " ".join(argv if argv is not None else sys.argv[1:])
        Path(args.out).write_text(
            f"# Gradient-spike clip of fit's converge mode\n\n{machine_line()}\n\ncommand: {cmd.rstrip()}\n\n{table}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
