"""Initializers on posteriordb: Laplace and Pathfinder, then a short fit with two optimizers.

Per posterior (``benchmarks/posteriordb.py``, unconstrained log densities): value-and-gradient
evaluations and seconds of :func:`vikl.laplace` and :func:`vikl.pathfinder` (4 paths, compile
included), the worst standardized mean error ``max_i |mean_q,i - ref_mean_i| / ref_sd_i`` of
each (2000 draws of the Gaussian pushed to the constrained scale), which of the two
``init="auto"`` picks (Pathfinder only where its ELBO estimate is 2 standard errors higher),
and the same error after ``--steps`` steps of ``vikl.fit`` (full rank, 16 draws, STL) from
that start with ``optax.adam(1e-2)`` (the default today) and with the preconditioned Adam of
converge mode (``_init.preconditioned_adam``).

    python -m benchmarks.init_study [--steps 2000] [--x64] [--names a,b]
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _common, posteriordb


def mean_error(post, q, key, n=2000):
    """Worst |mean - ref_mean| / ref_sd over constrained coordinates (draws of q pushed forward)."""
    u = q.sample(key, (n,))
    flat = jax.vmap(lambda v: post.flatten(post.constrain(v)))(u)
    flat = np.asarray(flat, np.float64)
    ok = np.all(np.isfinite(flat), axis=1)
    if not ok.any():
        return float("inf")
    return float(np.max(np.abs(flat[ok].mean(0) - post.ref_mean) / post.ref_sd))


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    jax.block_until_ready(jax.tree_util.tree_leaves(out))
    return out, time.perf_counter() - t0


def study(name, steps, key):
    import optax

    import vikl
    from vikl import _init

    post = posteriordb.load(name, with_draws=False)
    dt = jnp.zeros(()).dtype
    x0 = jnp.zeros((post.dim,), dt)
    k_lap, k_pf, k_fit, k_err = jax.random.split(key, 4)
    row = {"name": name, "d": post.dim}
    try:
        (q_lap, info), row["t_lap"] = timed(lambda: _init.laplace(post.logdensity, x0, return_info=True))
        row["ev_lap"], row["err_lap"] = info["num_grad_evals"], mean_error(post, q_lap, k_err)
    except ValueError as err:
        q_lap, row["err_lap"] = None, f"error: {str(err)[:40]}"
    try:
        (q_pf, info), row["t_pf"] = timed(
            lambda: _init.pathfinder(post.logdensity, x0, k_pf, return_info=True))
        row["ev_pf"], row["err_pf"] = info["num_grad_evals"], mean_error(post, q_pf, k_err)
    except ValueError as err:
        q_pf, row["err_pf"] = None, f"error: {str(err)[:40]}"
    q_start = q_lap if q_lap is not None else q_pf
    if q_lap is not None and q_pf is not None:  # what init="auto" picks
        pick = _init._pick(post.logdensity, [(q.loc, q.scale_tril) for q in (q_lap, q_pf)], k_fit)
        row["auto"] = ("laplace", "pathfinder")[pick]
        q_start = (q_lap, q_pf)[pick]
    if q_start is not None:
        obj = vikl.objectives.ReverseKL(num_samples=16, gradient="stl")
        for label, opt in (("adam", optax.adam(1e-2)), ("precond", _init.preconditioned_adam())):
            try:
                res, row[f"t_{label}"] = timed(lambda: vikl.fit(
                    q_start, post.logdensity, objective=obj, optimizer=opt, num_steps=steps,
                    key=k_fit, progress=False, num_diagnostic_samples=0))
                row[f"err_{label}"] = mean_error(post, res.distribution, k_err)
            except vikl.FitDivergedError:
                row[f"err_{label}"] = "diverged"
    return row


def fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="fit steps after the Laplace start")
    parser.add_argument("--x64", action="store_true", help="float64 (default float32)")
    parser.add_argument("--names", default=None, help="comma-separated posterior names (default all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    print("$ python -m benchmarks.init_study " + " ".join(sys.argv[1:] if argv is None else argv))
    print(_common.machine_line())
    names = args.names.split(",") if args.names else posteriordb.NAMES
    cols = ["name", "d", "ev_lap", "t_lap", "err_lap", "ev_pf", "t_pf", "err_pf", "auto",
            "err_adam", "t_adam", "err_precond", "t_precond"]
    print(" | ".join(cols))
    key = jax.random.key(args.seed)
    for i, name in enumerate(names):
        row = study(name, args.steps, jax.random.fold_in(key, i))
        print(" | ".join(fmt(row.get(c, "-")) for c in cols), flush=True)


if __name__ == "__main__":
    main()
