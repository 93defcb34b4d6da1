"""Draws per step of ``fit``'s converge mode: 16, 8 and 4 RQMC draws on posteriordb posteriors.

For each posterior and Gaussian family, ``vikl.fit(q0, logdensity, objective=ReverseKL(
num_samples=S, draws="auto"), key=key)`` with no ``num_steps`` (everything else default:
the initializer, preconditioned Adam, the stopping rule), float64, for S = 16, 8 and 4.
Printed per fit: the steps run, the gradient evaluations of the steps (S x steps; the
initializer's are the same for every S), whether the rule held, the 10,000-draw ELBO minus
the family's best ELBO from ``benchmarks.posteriors``' reference runs (its cache file), the
largest standardized mean error against the posteriordb reference and the PSIS k-hat. This is
the measurement behind ``vikl._fit.CONVERGE_RQMC_DRAWS``.

Run:  python -m benchmarks.converge_draws [--posteriors a,b] [--families fr,mf] [--draws 16,8,4]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import jax

import vikl
from benchmarks import posteriordb as pdb
from benchmarks._common import fmt, machine_line, markdown_table
from benchmarks.posteriors import DEFAULT_CACHE, Evaluator, _gauss_of, _q0

POSTERIORS = ("arma-arma11", "kidiq-kidscore_momiq", "mesquite-logmesquite_logvas", "sblrc-blr")
REF_TAG = "B=1000|R=20|n=10000|seed=0"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.converge_draws", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--posteriors", default=",".join(POSTERIORS), help="comma-separated posteriordb names")
    ap.add_argument("--families", default="fr,mf", help="comma-separated: fr (full rank), mf (mean field)")
    ap.add_argument("--draws", default="16,8,4", help="comma-separated draws per step")
    ap.add_argument("--cache", default=str(DEFAULT_CACHE), help="benchmarks.posteriors' cache (best ELBOs)")
    args = ap.parse_args(argv)
    refs = json.loads(open(args.cache).read())["ref"]
    print(machine_line(), flush=True)
    rows = []
    for name in args.posteriors.split(","):
        post = pdb.load(name)
        ev = Evaluator(post, 10_000, seed=20_221)
        for fam in args.families.split(","):
            best = refs[f"{name}|{REF_TAG}"][fam]["best"]
            for s in (int(x) for x in args.draws.split(",")):
                with jax.enable_x64(True), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    obj = vikl.objectives.ReverseKL(num_samples=s, draws="auto")
                    t0 = time.perf_counter()
                    res = vikl.fit(_q0(post, fam, "float64", 0), post.logdensity, objective=obj,
                                   key=jax.random.key(1), progress=False)
                    seconds = time.perf_counter() - t0
                    m = ev.gaussian(*_gauss_of(res.unconstrained_distribution))
                rows.append([name, fam, s, res.num_steps, s * res.num_steps, "yes" if res.converged else "no",
                             fmt(m["elbo"] - best, 3), fmt(m["mean_err"]), fmt(m["khat"]), fmt(seconds)])
                print(" | ".join(str(c) for c in rows[-1]), flush=True)
    print(markdown_table(["posterior", "family", "draws", "steps", "step gradients", "converged",
                          "ELBO - best", "max abs mean err / sd_ref", "k-hat", "s (first call)"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
