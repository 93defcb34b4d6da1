"""Closed-form and Monte-Carlo KL throughput: vikl vs torch.distributions, NumPyro, hand-written JAX.

Problems K1 (a: Normal, b: full-covariance MVN, c: Categorical), K2 (Monte-Carlo
KL of two 10-d MVNs) and the float32 ACCURACY probe of shared/BENCH_PROBLEMS.md,
all in one process. Each timed call constructs the distributions from raw
arrays and returns all KL values. Per row: one cold call (trace + compile + run
for jitted code) and 3 untimed warm-up calls, then timed calls interleaved with
the other rows' (each pass calls every row once, in a new random order; see
``benchmarks._common.timed``): 5 x ``--rounds`` (default 7) for the millisecond
kernels K1(a) and K1(b), 5 x 3 for K1(c), whose calls last 0.1-2 s, and 5 for K2.
The tables give the median and the fastest of those calls.

Run:  python -m benchmarks.kl_throughput [--quick] [--rounds N] [--out benchmarks/results/kl_throughput.md]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from decimal import Decimal, getcontext

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import vikl  # noqa: E402
from benchmarks._common import REPEATS, fmt, machine_line, markdown_table, timed

TORCH_DEVICE = "cpu"  # --torch-device; "cuda" for a GPU run


def _host(x):
    """A result as a NumPy array: torch tensors (possibly on a GPU) and JAX arrays alike."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x, np.float64)


def _rel_err(got, ref):
    got = _host(got)
    return float(np.median(np.abs(got - ref) / np.maximum(np.abs(ref), 1e-300)))


def _torch():
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        return torch
    except ImportError:  # pragma: no cover
        return None


def _numpyro():
    try:
        import numpyro.distributions as nd

        return nd
    except ImportError:  # pragma: no cover
        return None


# --------------------------------------------------------------------------- K1
def k1_normal(n):
    rng = np.random.default_rng(2)
    m1, m2 = rng.standard_normal(n), rng.standard_normal(n)
    s1, s2 = np.exp(0.3 * rng.standard_normal(n)), np.exp(0.3 * rng.standard_normal(n))
    ref = np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    args32 = [a.astype(np.float32) for a in (m1, s1, m2, s2)]
    jargs = [jnp.asarray(a) for a in args32]
    rows = {}

    f = jax.jit(lambda a, b, c, d: vikl.kl_divergence(vikl.Normal(a, b), vikl.Normal(c, d)))
    rows["vikl (jit)"] = lambda: f(*jargs)

    def hand(a, b, c, d):
        return jnp.log(d / b) + (b * b + (a - c) ** 2) / (2 * d * d) - 0.5

    h = jax.jit(hand)
    rows["hand-written jnp (jit)"] = lambda: h(*jargs)
    nd = _numpyro()
    if nd:
        g = jax.jit(lambda a, b, c, d: nd.kl_divergence(nd.Normal(a, b), nd.Normal(c, d)))
        rows["numpyro (jit)"] = lambda: g(*jargs)
    torch = _torch()
    if torch:
        targs = [torch.from_numpy(a).to(TORCH_DEVICE) for a in args32]
        td = torch.distributions
        rows["torch"] = _no_grad(lambda: td.kl_divergence(td.Normal(*targs[:2]), td.Normal(*targs[2:])))
        rows["torch (validate_args=False)"] = _no_grad(
            lambda: td.kl_divergence(
                td.Normal(*targs[:2], validate_args=False), td.Normal(*targs[2:], validate_args=False)
            )
        )
    return rows, ref


def k1_mvn(n, d=16):
    rng = np.random.default_rng(2)
    m1, m2 = rng.standard_normal((n, d)), rng.standard_normal((n, d))

    def tril():
        return np.tril(0.3 * rng.standard_normal((n, d, d)), -1) + np.einsum(
            "ni,ij->nij", rng.uniform(0.5, 1.5, (n, d)), np.eye(d)
        )

    l1, l2 = tril(), tril()
    # float64 reference from covariance matrices (textbook trace / log-det form)
    c1 = l1 @ np.swapaxes(l1, -1, -2)
    c2 = l2 @ np.swapaxes(l2, -1, -2)
    c2inv = np.linalg.inv(c2)
    diff = m2 - m1
    ref = 0.5 * (
        np.einsum("nij,nji->n", c2inv, c1)
        + np.einsum("ni,nij,nj->n", diff, c2inv, diff)
        - d
        + np.linalg.slogdet(c2)[1]
        - np.linalg.slogdet(c1)[1]
    )
    args32 = [a.astype(np.float32) for a in (m1, l1, m2, l2)]
    jargs = [jnp.asarray(a) for a in args32]
    rows = {}
    f = jax.jit(
        lambda a, b, c, e: vikl.kl_divergence(
            vikl.MultivariateNormal(a, scale_tril=b), vikl.MultivariateNormal(c, scale_tril=e)
        )
    )
    rows["vikl (jit)"] = lambda: f(*jargs)

    def hand(mp, lp, mq, lq):
        sol = jax.scipy.linalg.solve_triangular(
            lq, jnp.concatenate([lp, (mq - mp)[..., None]], axis=-1), lower=True
        )
        m, z = sol[..., :-1], sol[..., -1]
        logdet = jnp.sum(
            jnp.log(jnp.diagonal(lq, axis1=-2, axis2=-1)) - jnp.log(jnp.diagonal(lp, axis1=-2, axis2=-1)), -1
        )
        return 0.5 * (jnp.sum(m * m, (-2, -1)) + jnp.sum(z * z, -1) - d) + logdet

    h = jax.jit(hand)
    rows["hand-written jnp (jit)"] = lambda: h(*jargs)
    nd = _numpyro()
    if nd:
        g = jax.jit(
            lambda a, b, c, e: nd.kl_divergence(
                nd.MultivariateNormal(a, scale_tril=b), nd.MultivariateNormal(c, scale_tril=e)
            )
        )
        rows["numpyro (jit)"] = lambda: g(*jargs)
    torch = _torch()
    if torch:
        targs = [torch.from_numpy(a).to(TORCH_DEVICE) for a in args32]
        td = torch.distributions
        rows["torch"] = _no_grad(
            lambda: td.kl_divergence(
                td.MultivariateNormal(targs[0], scale_tril=targs[1]),
                td.MultivariateNormal(targs[2], scale_tril=targs[3]),
            )
        )
        rows["torch (validate_args=False)"] = _no_grad(
            lambda: td.kl_divergence(
                td.MultivariateNormal(targs[0], scale_tril=targs[1], validate_args=False),
                td.MultivariateNormal(targs[2], scale_tril=targs[3], validate_args=False),
            )
        )
    return rows, ref


def k1_categorical(n, k=1000):
    rng = np.random.default_rng(2)

    def softmax(z):
        z = z - z.max(-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(rng.standard_normal((n, k))), softmax(rng.standard_normal((n, k)))
    ref = np.sum(p * (np.log(p) - np.log(q)), -1)
    p32, q32 = p.astype(np.float32), q.astype(np.float32)
    jp, jq = jnp.asarray(p32), jnp.asarray(q32)
    rows = {}
    f = jax.jit(lambda a, b: vikl.kl_divergence(vikl.Categorical(probs=a), vikl.Categorical(probs=b)))
    rows["vikl (jit)"] = lambda: f(jp, jq)
    fa = jax.jit(vikl.kl_divergence)
    rows["vikl arrays (jit)"] = lambda: fa(jp, jq)
    h = jax.jit(lambda a, b: jnp.sum(a * (jnp.log(a) - jnp.log(b)), -1))
    rows["hand-written jnp (jit)"] = lambda: h(jp, jq)
    nd = _numpyro()
    if nd:
        g = jax.jit(lambda a, b: nd.kl_divergence(nd.Categorical(probs=a), nd.Categorical(probs=b)))
        rows["numpyro (jit)"] = lambda: g(jp, jq)
    try:
        import scipy.special

        rows["scipy rel_entr"] = lambda: scipy.special.rel_entr(p32, q32).sum(-1)
    except ImportError:  # pragma: no cover
        pass
    torch = _torch()
    if torch:
        tp, tq = torch.from_numpy(p32).to(TORCH_DEVICE), torch.from_numpy(q32).to(TORCH_DEVICE)
        td = torch.distributions
        rows["torch"] = _no_grad(lambda: td.kl_divergence(td.Categorical(probs=tp), td.Categorical(probs=tq)))
        rows["torch (validate_args=False)"] = _no_grad(
            lambda: td.kl_divergence(
                td.Categorical(probs=tp, validate_args=False), td.Categorical(probs=tq, validate_args=False)
            )
        )
    return rows, ref


def _no_grad(fn):
    """``fn`` run under ``torch.no_grad()`` (the torch rows build no autograd graph)."""
    import torch

    def call():
        with torch.no_grad():
            return fn()

    return call


def k1_table(name, n, rows, ref):
    best = max(n / r[1] for r in rows.values())
    hand = rows.get("hand-written jnp (jit)")
    out = []
    for label, row in rows.items():
        first, med, val = row
        rate = n / med
        out.append(
            [
                label,
                fmt(first, 3),
                fmt(med * 1e3, 4),
                fmt(row.best * 1e3, 4),
                f"{rate:.3g}",
                f"{best / rate:.2f}x",
                f"{med / hand[1]:.2f}x" if hand else "-",
                f"{row.best / hand.best:.2f}x" if hand else "-",
                fmt(_rel_err(val, ref), 2),
            ]
        )
    header = [
        "implementation",
        "first call (s)",
        "median (ms)",
        "min (ms)",
        "pairs/s",
        "slowdown vs fastest",
        "time vs hand-written",
        "min vs hand-written",
        "median rel. err vs f64",
    ]
    return f"### {name}\n\n" + markdown_table(header, out)


# --------------------------------------------------------------------------- K2
def k2_problem():
    """Problem K2 (BENCH_PROBLEMS.md): two 10-d full-covariance Gaussians, seeded.

    Returns ``(p, q, exact KL in float64, [mp, Lp, mq, Lq] as float32 arrays)``.
    """
    rng = np.random.default_rng(3)
    d = 10
    mp, mq = rng.standard_normal(d), 0.5 * rng.standard_normal(d)
    a = rng.standard_normal((d, d))
    lp = np.linalg.cholesky(a @ a.T / 10 + 0.5 * np.eye(d))
    a = rng.standard_normal((d, d))
    lq = np.linalg.cholesky(a @ a.T / 10 + 0.5 * np.eye(d))
    cp, cq = lp @ lp.T, lq @ lq.T
    cqi = np.linalg.inv(cq)
    exact = 0.5 * (
        np.trace(cqi @ cp) + (mq - mp) @ cqi @ (mq - mp) - d + np.linalg.slogdet(cq)[1] - np.linalg.slogdet(cp)[1]
    )
    f32 = [jnp.asarray(v.astype(np.float32)) for v in (mp, lp, mq, lq)]
    p = vikl.MultivariateNormal(f32[0], scale_tril=f32[1])
    q = vikl.MultivariateNormal(f32[2], scale_tril=f32[3])
    return p, q, float(exact), f32


def k2(num):
    p, q, exact, f32 = k2_problem()
    d = f32[0].shape[0]
    mp, lp, mq, lq = (np.asarray(v) for v in f32)  # torch's inputs: the same float32 values
    key = jax.random.PRNGKey(0)
    rows = {}

    def vk(k):
        e = vikl.estimate_kl(p, q, k, num_samples=num)
        return jnp.stack([e.value, e.stderr])

    vkj = jax.jit(vk)
    rows["vikl estimate_kl (jit)"] = lambda: vkj(key)

    def hand(k):
        eps = jax.random.normal(k, (num, d), jnp.float32)
        x = f32[0] + eps @ f32[1].T
        zq = jax.scipy.linalg.solve_triangular(f32[3], (x - f32[2]).T, lower=True)
        lpx = -0.5 * jnp.sum(eps * eps, -1) - jnp.sum(jnp.log(jnp.diag(f32[1])))
        lqx = -0.5 * jnp.sum(zq * zq, 0) - jnp.sum(jnp.log(jnp.diag(f32[3])))
        t = lpx - lqx
        return jnp.stack([t.mean(), t.std() / math.sqrt(num)])

    hj = jax.jit(hand)
    rows["hand-written jnp (jit)"] = lambda: hj(key)
    nd = _numpyro()
    if nd:
        npp = nd.MultivariateNormal(f32[0], scale_tril=f32[1])
        npq = nd.MultivariateNormal(f32[2], scale_tril=f32[3])

        def nk(k):
            x = npp.sample(k, (num,))
            t = npp.log_prob(x) - npq.log_prob(x)
            return jnp.stack([t.mean(), t.std() / math.sqrt(num)])

        nkj = jax.jit(nk)
        rows["numpyro sample+log_prob (jit)"] = lambda: nkj(key)
    torch = _torch()
    if torch:
        td = torch.distributions
        def tensor(a):
            return torch.tensor(a, dtype=torch.float32, device=TORCH_DEVICE)

        tp = td.MultivariateNormal(tensor(mp), scale_tril=tensor(lp))
        tq = td.MultivariateNormal(tensor(mq), scale_tril=tensor(lq))
        torch.manual_seed(0)

        def tk():
            with torch.no_grad():
                x = tp.sample((num,))
                t = tp.log_prob(x) - tq.log_prob(x)
                return np.array([t.mean().item(), t.std().item() / math.sqrt(num)])

        rows["torch sample+log_prob"] = tk
    out = []
    rows = timed(rows)
    fastest = min(r[1] for r in rows.values())
    for label, (first, med, val) in rows.items():
        val = _host(val)
        out.append(
            [
                label,
                fmt(first, 3),
                fmt(med, 3),
                f"{med / fastest:.2f}x",
                f"{val[0]:.5f}",
                f"{val[0] - exact:+.2e}",
                f"{(val[0] - exact) / val[1]:+.2f}",
            ]
        )
    header = ["implementation", "first call (s)", "median (s)", "vs fastest", "estimate", "error", "error / s.e."]
    return f"### K2 — Monte-Carlo KL, two 10-d MVNs, {num:,} samples (exact {exact:.5f})\n\n" + markdown_table(
        header, out
    )


# --------------------------------------------------------------------- ACCURACY
def accuracy():
    delta = 1e-3
    getcontext().prec = 60
    rows = []

    def exact_kl(s2, m2):
        s2, m2 = Decimal(float(s2)), Decimal(float(m2))
        r = 1 / (s2 * s2)
        return float((r - 1 - r.ln()) / 2 + m2 * m2 / (2 * s2 * s2))

    true = exact_kl(1 + delta, delta)
    true_f32in = exact_kl(np.float32(1 + delta), np.float32(delta))

    def vikl_kl(dtype):
        with jax.enable_x64(dtype == "float64"):
            p = vikl.Normal(jnp.asarray(0.0, dtype), jnp.asarray(1.0, dtype))
            q = vikl.Normal(jnp.asarray(delta, dtype), jnp.asarray(1 + delta, dtype))
            return float(vikl.kl_divergence(p, q))

    def textbook(dtype):
        s2, m2 = np.asarray(1 + delta, dtype), np.asarray(delta, dtype)
        one = np.asarray(1.0, dtype)
        return float(np.log(s2 / one) + (one + m2 * m2) / (2 * s2 * s2) - np.asarray(0.5, dtype))

    def log1p_form(dtype):
        s2, m2 = np.asarray(1 + delta, dtype), np.asarray(delta, dtype)
        x = (one := np.asarray(1.0, dtype)) / (s2 * s2) - one
        return float((x - np.log1p(x)) / 2 + m2 * m2 / (2 * s2 * s2))

    impls = {"vikl": vikl_kl, "hand-written textbook": textbook, "hand-written x - log1p(x)": log1p_form}
    torch = _torch()
    if torch:
        def torch_kl(dtype):
            tdt = torch.float32 if dtype == "float32" else torch.float64
            td = torch.distributions
            return float(
                td.kl_divergence(
                    td.Normal(torch.tensor(0.0, dtype=tdt), torch.tensor(1.0, dtype=tdt)),
                    td.Normal(torch.tensor(delta, dtype=tdt), torch.tensor(1 + delta, dtype=tdt)),
                )
            )

        impls["torch"] = torch_kl
    nd = _numpyro()
    if nd:
        def numpyro_kl(dtype):
            with jax.enable_x64(dtype == "float64"):
                return float(
                    nd.kl_divergence(
                        nd.Normal(jnp.asarray(0.0, dtype), jnp.asarray(1.0, dtype)),
                        nd.Normal(jnp.asarray(delta, dtype), jnp.asarray(1 + delta, dtype)),
                    )
                )

        impls["numpyro"] = numpyro_kl
    for label, fn in impls.items():
        v32, v64 = fn("float32"), fn("float64")
        rows.append(
            [label, f"{v32:.7e}", f"{v64:.10e}", fmt(abs(v32 - v64) / abs(v64), 2), fmt(abs(v32 - true_f32in) / true_f32in, 2)]
        )
    header = ["implementation", "float32", "float64", "rel. err f32 vs f64", "rel. err f32 vs exact(f32 inputs)"]
    return (
        f"### ACCURACY — KL(N(0,1) ‖ N(1e-3, 1+1e-3)), exact {true:.10e} (60-digit decimal)\n\n"
        + markdown_table(header, rows)
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10x smaller problems (smoke test)")
    parser.add_argument("--out", default=None, help="also write the markdown table to this file")
    parser.add_argument(
        "--rounds",
        type=int,
        default=7,
        help="K1(a) and K1(b) time 5 x ROUNDS calls per row (K1(c): 5 x min(ROUNDS, 3)), interleaved with "
        "the other rows' calls in a new random order each pass; the table gives their median and minimum",
    )
    parser.add_argument(
        "--torch-device", default="cpu", help="device for the torch rows (cpu, or cuda on a GPU machine)"
    )
    args = parser.parse_args(argv)
    global TORCH_DEVICE
    TORCH_DEVICE = args.torch_device
    scale = 10 if args.quick else 1
    # Warm up the JAX runtime once so the first row's "first call" is not charged for it.
    jax.block_until_ready(jax.jit(lambda x: jnp.log(x) * 2)(jnp.ones(8)))
    sections = [machine_line()]
    print(sections[0], flush=True)
    for name, n, fn in (
        (f"K1(a) — Normal/Normal, N = {1_000_000 // scale:,}", 1_000_000 // scale, k1_normal),
        (f"K1(b) — full-cov MVN/MVN, d = 16, N = {10_000 // scale:,}", 10_000 // scale, k1_mvn),
        (f"K1(c) — Categorical/Categorical, K = 1000, N = {100_000 // scale:,}", 100_000 // scale, k1_categorical),
    ):
        cases, ref = fn(n)
        repeats = REPEATS * (min(args.rounds, 3) if fn is k1_categorical else args.rounds)
        rows = timed(cases, repeats=repeats)
        sections.append(k1_table(f"{name} (median of {repeats} interleaved calls)", n, rows, ref))
        print("\n" + sections[-1], flush=True)
    sections.append(k2(1_000_000 // scale))
    print("\n" + sections[-1], flush=True)
    sections.append(accuracy())
    print("\n" + sections[-1], flush=True)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            f.write("# KL throughput (`python -m benchmarks.kl_throughput`)\n\n" + "\n\n".join(sections) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
