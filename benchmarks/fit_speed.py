"""Variational fitting speed: vikl.fit vs a hand-written jit(lax.scan) loop, BlackJAX and NumPyro SVI.

Problems F1 (full-rank Gaussian reverse-KL VI, d in {2, 10, 100}) and F2
(mean-field, d in {10, 1000}) of shared/BENCH_PROBLEMS.md, all peers in one
process with the same jnp log-density closure, Adam(1e-2), 16 samples per step,
2000 steps, key 0. Per peer: the first call (trace + compile + run), the median
of 5 further calls, microseconds per step, the ratio to the hand-written loop
with the same gradient estimator, and the exact KL(q‖p) of the final q
(float64 NumPy). "reparam" is the plain reparameterized ELBO with the analytic
entropy; "STL" is sticking-the-landing (BlackJAX's default).

Run:  python -m benchmarks.fit_speed [--quick] [--repeats 5] [--out benchmarks/results/fit_speed.md]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import vikl  # noqa: E402
from benchmarks._common import block, fmt, machine_line, markdown_table, timed
from vikl import objectives  # noqa: E402

fit = getattr(vikl, "fit", None)
if fit is None:  # before vikl/__init__.py exports it
    from vikl._fit import fit

NUM_SAMPLES = 16
LR = 1e-2


# ----------------------------------------------------------------------------- the problem
def make_target(d):
    """(log_p for one point, mean, covariance) as defined in BENCH_PROBLEMS.md (F1/F2)."""
    m = np.random.default_rng(0).standard_normal(d)
    a = np.random.default_rng(1).standard_normal((d, d))
    s = a @ a.T / d + 0.1 * np.eye(d)
    chol = np.linalg.cholesky(s)
    linv = jnp.asarray(np.linalg.inv(chol), jnp.float32)
    mean = jnp.asarray(m, jnp.float32)
    const = float(-0.5 * d * math.log(2 * math.pi) - np.sum(np.log(np.diag(chol))))

    def log_p(x):
        z = linv @ (x - mean)
        return const - 0.5 * jnp.sum(z * z)

    return log_p, m, s


def exact_kl(mu, scale_tril, m, s):
    """KL(N(mu, L L^T) ‖ N(m, S)) in float64 NumPy."""
    mu = np.asarray(mu, np.float64)
    lq = np.asarray(scale_tril, np.float64)
    cov_q = lq @ lq.T
    d = len(m)
    sinv = np.linalg.inv(s)
    diff = m - mu
    return 0.5 * (
        np.trace(sinv @ cov_q) + diff @ sinv @ diff - d
        + np.linalg.slogdet(s)[1] - 2 * np.sum(np.log(np.abs(np.diag(lq))))
    )


def _tril_of(raw):
    return jnp.tril(raw, -1) + jnp.diag(jnp.exp(jnp.diag(raw)))


# ----------------------------------------------------------------------------- peers
def pure_jax(log_p, d, steps, full, stl):
    """The hand-written limit: value_and_grad + optax.adam in one lax.scan under jax.jit."""
    opt = optax.adam(LR)
    vlog_p = jax.vmap(log_p)
    half_log_2pi = 0.5 * math.log(2 * math.pi)

    def log_q(params, x):
        mu, raw = params
        if full:
            lq = _tril_of(raw)
            z = jax.scipy.linalg.solve_triangular(lq, (x - mu).T, lower=True).T
            return -0.5 * jnp.sum(z * z, -1) - jnp.sum(jnp.diag(raw)) - d * half_log_2pi
        z = (x - mu) * jnp.exp(-raw)
        return -0.5 * jnp.sum(z * z, -1) - jnp.sum(raw) - d * half_log_2pi

    def loss(params, key):
        mu, raw = params
        eps = jax.random.normal(key, (NUM_SAMPLES, d))
        x = mu + (eps @ _tril_of(raw).T if full else eps * jnp.exp(raw))
        if stl:
            return jnp.mean(log_q(jax.lax.stop_gradient(params), x) - vlog_p(x))
        return -jnp.mean(vlog_p(x)) - jnp.sum(jnp.diag(raw) if full else raw)

    @jax.jit
    def run(key):
        params = (jnp.zeros(d), jnp.zeros((d, d)) if full else jnp.zeros(d))
        state = opt.init(params)

        def body(carry, k):
            p, s = carry
            value, grads = jax.value_and_grad(loss)(p, k)
            updates, s = opt.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), value

        (params, _), losses = jax.lax.scan(body, (params, state), jax.random.split(key, steps))
        return params

    def final(params):
        mu, raw = params
        return mu, _tril_of(raw) if full else jnp.diag(jnp.exp(raw))

    return lambda: final(run(jax.random.PRNGKey(0)))


def vikl_fit(log_p, d, steps, full, stl, progress, diagnostics=False):
    q0 = (vikl.MultivariateNormal(jnp.zeros(d), scale_tril=jnp.eye(d)) if full
          else vikl.MultivariateNormalDiag(jnp.zeros(d), jnp.ones(d)))
    obj = objectives.ReverseKL(num_samples=NUM_SAMPLES, gradient="stl" if stl else "reparam")
    opt = optax.adam(LR)  # one object: later calls reuse the compiled program

    def run():
        res = fit(q0, log_p, objective=obj, optimizer=opt, num_steps=steps, key=jax.random.PRNGKey(0),
                  progress=progress)
        if diagnostics:  # computed lazily: only when asked for
            res.khat
        q = res.distribution
        return q.loc, (q.scale_tril if full else jnp.diag(q.scale_diag))

    return run


def blackjax_vi(log_p, d, steps, full, scan, keep_elbo=False):
    """BlackJAX's VI step in a jitted scan (or a per-step jitted loop).

    BlackJAX returns the ELBO of each step in its info; the plain scan discards it, so
    XLA drops the ELBO's computation. ``keep_elbo`` returns the per-step ELBOs from the
    scan, the work ``vikl.fit``'s per-step ``losses`` always does.
    """
    import blackjax

    opt = optax.adam(LR)
    algo = (blackjax.fullrank_vi if full else blackjax.meanfield_vi)(log_p, opt, num_samples=NUM_SAMPLES)

    def init():
        state = algo.init(jnp.zeros(d))
        if not full:  # its default rho = -2 (sigma 0.14) is overridden to rho = 0 (sigma 1)
            rho = jnp.zeros(d)
            state = state._replace(rho=rho, opt_state=opt.init((state.mu, rho)))
        return state

    def final(state):
        if full:
            from blackjax.vi.fullrank_vi import _unflatten_cholesky

            return state.mu, _unflatten_cholesky(state.chol_params, d)
        return state.mu, jnp.diag(jnp.exp(state.rho))

    if scan:
        @jax.jit
        def run_scan(key):
            def body(s, k):
                s, info = algo.step(k, s)
                return s, (info.elbo if keep_elbo else None)

            return jax.lax.scan(body, init(), jax.random.split(key, steps))

        return lambda: final(block(run_scan(jax.random.PRNGKey(0)))[0])

    step = jax.jit(algo.step)

    def run_loop():
        state = init()
        for k in jax.random.split(jax.random.PRNGKey(0), steps):
            state, _ = step(k, state)
        return final(state)

    return run_loop


def numpyro_svi(log_p, d, steps, full, mode):
    import numpyro
    import numpyro.distributions as nd
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoDiagonalNormal, AutoMultivariateNormal
    from numpyro.infer.initialization import init_to_value

    def model():
        x = numpyro.sample("x", nd.ImproperUniform(nd.constraints.real_vector, (), (d,)))
        numpyro.factor("log_p", log_p(x))

    guide_cls = AutoMultivariateNormal if full else AutoDiagonalNormal
    guide = guide_cls(model, init_loc_fn=init_to_value(values={"x": jnp.zeros(d)}), init_scale=1.0)
    svi = SVI(model, guide, optax.adam(LR), Trace_ELBO(num_particles=NUM_SAMPLES))

    def final(params):
        post = guide.get_posterior(params)
        if full:
            return post.loc, post.scale_tril
        return post.loc, jnp.diag(post.scale)

    if mode == "scan":
        @jax.jit
        def run_scan(key):
            state = svi.init(key)

            def body(s, _):
                s, loss = svi.update(s)
                return s, loss

            return svi.get_params(jax.lax.scan(body, state, None, length=steps)[0])

        return lambda: final(run_scan(jax.random.PRNGKey(0)))
    return lambda: final(svi.run(jax.random.PRNGKey(0), steps, progress_bar=(mode == "run+bar")).params)


# ----------------------------------------------------------------------------- driver
@contextlib.contextmanager
def _quiet_stderr():
    """Progress bars still render (their cost is measured) but into /dev/null."""
    old = sys.stderr
    with open(os.devnull, "w") as devnull:
        sys.stderr = devnull
        try:
            yield
        finally:
            sys.stderr = old


def peers(log_p, d, steps, full, skip_numpyro_run):
    rows = [
        ("hand-written jit(scan)", "reparam", lambda: pure_jax(log_p, d, steps, full, stl=False)),
        ("hand-written jit(scan)", "STL", lambda: pure_jax(log_p, d, steps, full, stl=True)),
        ("vikl.fit, progress on", "reparam", lambda: vikl_fit(log_p, d, steps, full, False, True)),
        ("vikl.fit, progress off", "reparam", lambda: vikl_fit(log_p, d, steps, full, False, False)),
        ("vikl.fit + res.khat (PSIS, 2000 draws)", "reparam",
         lambda: vikl_fit(log_p, d, steps, full, False, True, diagnostics=True)),
        ("vikl.fit, progress on", "STL", lambda: vikl_fit(log_p, d, steps, full, True, True)),
        ("vikl.fit, progress off", "STL", lambda: vikl_fit(log_p, d, steps, full, True, False)),
        ("BlackJAX jit(scan)", "STL", lambda: blackjax_vi(log_p, d, steps, full, scan=True)),
        ("BlackJAX jit(scan), ELBO per step kept", "STL",
         lambda: blackjax_vi(log_p, d, steps, full, scan=True, keep_elbo=True)),
        ("BlackJAX jit(step) loop", "STL", lambda: blackjax_vi(log_p, d, steps, full, scan=False)),
        ("NumPyro jit(scan(svi.update))", "reparam", lambda: numpyro_svi(log_p, d, steps, full, "scan")),
    ]
    if not skip_numpyro_run:
        rows += [
            ("NumPyro svi.run, bar off", "reparam", lambda: numpyro_svi(log_p, d, steps, full, "run")),
            ("NumPyro svi.run, bar on", "reparam", lambda: numpyro_svi(log_p, d, steps, full, "run+bar")),
        ]
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--quick", action="store_true", help="F1 d in {2, 10}, F2 d = 10, 500 steps, 3 repeats")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls after the first (default 5)")
    ap.add_argument("--steps", type=int, default=None, help="optimization steps (default 2000)")
    ap.add_argument("--out", default="benchmarks/results/fit_speed.md", help="markdown report path")
    args = ap.parse_args(argv)
    steps = args.steps or (500 if args.quick else 2000)
    repeats = args.repeats or (3 if args.quick else 5)
    problems = [("F1", True, d) for d in ((2, 10) if args.quick else (2, 10, 100))]
    problems += [("F2", False, d) for d in ((10,) if args.quick else (10, 1000))]

    header = ["problem", "d", "peer", "gradient", "first call s", "steady s", "µs/step",
              "× hand (same grad)", "CPU µs/step", "CPU × hand", "KL(q‖p)"]
    table = []
    print(machine_line(), flush=True)
    for name, full, d in problems:
        log_p, m, s = make_target(d)
        rows = peers(log_p, d, steps, full, skip_numpyro_run=(d >= 1000 and args.quick))
        cases = {(peer, grad): make() for peer, grad, make in rows}
        with _quiet_stderr():  # interleaved calls: load changes hit every peer alike
            timings = timed(cases, repeats=repeats, warmup=0)
        results = [timings[(peer, grad)][2] for peer, grad, _ in rows]
        firsts = [timings[(peer, grad)][0] for peer, grad, _ in rows]
        med = [timings[(peer, grad)][1] for peer, grad, _ in rows]
        med_cpu = [timings[(peer, grad)].cpu for peer, grad, _ in rows]
        base = {grad: (med[i], med_cpu[i]) for i, (peer, grad, _) in enumerate(rows) if peer.startswith("hand")}
        for i, (peer, grad, _) in enumerate(rows):
            mu, lq = results[i]
            kl = exact_kl(mu, lq, m, s)
            b = base.get(grad, (float("nan"), float("nan")))
            row = [name, d, peer, grad, fmt(firsts[i]), fmt(med[i]), fmt(1e6 * med[i] / steps),
                   fmt(med[i] / b[0]), fmt(1e6 * med_cpu[i] / steps), fmt(med_cpu[i] / b[1]), fmt(kl)]
            table.append(row)
            print(" | ".join(str(c) for c in row), flush=True)

    recompiled = _recompile_check()
    text = "\n".join([
        f"# vikl.fit speed (F1, F2 of BENCH_PROBLEMS.md; {steps} steps, {NUM_SAMPLES} samples, "
        f"Adam {LR}, median of {repeats})",
        "",
        machine_line(),
        "",
        f"command: python -m benchmarks.fit_speed {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip(),
        "",
        markdown_table(header, table),
        "",
        f"Second vikl.fit with the same shapes recompiled: {'yes' if recompiled else 'no'}.",
        "",
    ])
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(f"\nSecond vikl.fit with the same shapes recompiled: {'yes' if recompiled else 'no'}")
    print(f"wrote {args.out}")


def _recompile_check() -> bool:
    """True when a second fit with new values but the same shapes traces the objective again."""
    traces = []
    inner = objectives.ReverseKL(num_samples=NUM_SAMPLES)

    def counting(q, target, key):
        traces.append(1)
        return inner(q, target, key)

    log_p, _, _ = make_target(3)
    opt = optax.adam(LR)
    for loc in (0.0, 1.0):
        q0 = vikl.MultivariateNormal(jnp.full(3, loc), scale_tril=jnp.eye(3))
        fit(q0, log_p, objective=counting, optimizer=opt, num_steps=100, key=jax.random.PRNGKey(1), progress=False)
        if loc == 0.0:
            first = len(traces)
    return len(traces) != first


if __name__ == "__main__":
    main()
