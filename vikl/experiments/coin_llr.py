"""The per-flip log-likelihood ratio of coin flips converges to KL(p||q).

Flip a fair coin, ``p = Bernoulli(0.5)``, n times and score the sequence with
the normalized log-likelihood ratio against a biased coin ``q = Bernoulli(0.8)``:

    LLR_n = (1/n) sum_i [log p(x_i) - log q(x_i)]   (nats per flip).

By the law of large numbers ``LLR_n -> E_p[log p(X) - log q(X)] = KL(p‖q)``
(0.2231 nats here), with standard deviation ``sigma / sqrt(n)`` where ``sigma^2 =
Var_p[log p(X) - log q(X)]``. The figure shows, left, the mean over many
independent sequences with their 50% and 90% bands next to ``KL(p‖q)`` and,
right, their standard deviation next to ``sigma/sqrt(n)``; the JSON lists the
same curves at logarithmically spaced n. This is why KL measures how
fast a test tells p from q: the evidence for p grows by KL(p‖q) nats per flip.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

import vikl
from vikl import plotting as vp
from vikl.experiments import _common

NAME = "coin_llr"

P_HEADS, Q_HEADS = 0.5, 0.8


@functools.partial(jax.jit, static_argnames=("num_sequences", "num_flips"))
def _paths(key, p, q, num_sequences, num_flips):
    x = p.sample(key, (num_sequences, num_flips))
    terms = p.log_prob(x) - q.log_prob(x)
    n = jnp.arange(1, num_flips + 1, dtype=terms.dtype)
    return jnp.cumsum(terms, axis=1) / n


def llr_paths(key, p, q, num_sequences: int, num_flips: int):
    """Running normalized LLR ``(1/n) sum log p/q`` for each sequence; shape (S, n)."""
    return np.asarray(_paths(key, p, q, num_sequences=num_sequences, num_flips=num_flips), np.float64)


def run(ctx: _common.Context) -> dict:
    p = vikl.Bernoulli(probs=jnp.float32(P_HEADS))
    q = vikl.Bernoulli(probs=jnp.float32(Q_HEADS))
    kl = float(vikl.kl_divergence(p, q))
    kl_hand = P_HEADS * math.log(P_HEADS / Q_HEADS) + (1 - P_HEADS) * math.log((1 - P_HEADS) / (1 - Q_HEADS))
    # Variance of one term log p(x) - log q(x) under p.
    t1 = math.log(P_HEADS / Q_HEADS)
    t0 = math.log((1 - P_HEADS) / (1 - Q_HEADS))
    sigma = math.sqrt(P_HEADS * t1**2 + (1 - P_HEADS) * t0**2 - kl_hand**2)

    num_sequences = ctx.pick(2000, 200)
    num_flips = ctx.pick(5000, 500)
    ctx.log(f"{num_sequences} sequences of {num_flips} flips")
    paths = llr_paths(ctx.key(), p, q, num_sequences, num_flips)
    n = np.arange(1, num_flips + 1)
    mean = paths.mean(0)
    std = paths.std(0)
    qs = np.quantile(paths, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)

    fig, (a1, a2) = vp.subplots(1, 2, width=7.6, height=3.0)
    c = vp.COLORS["forward"]
    a1.fill_between(n, qs[0], qs[4], color=c, alpha=0.18, linewidth=0, label="5–95% of sequences")
    a1.fill_between(n, qs[1], qs[3], color=c, alpha=0.35, linewidth=0, label="25–75%")
    for i in range(3):
        a1.plot(n, paths[i], color=vp.COLORS["target"], linewidth=0.6, alpha=0.8,
                label="single sequences" if i == 0 else None)
    a1.plot(n, mean, color=c, label="mean over sequences")
    a1.axhline(kl, color=vp.COLORS["reverse"], linestyle="--", label=f"KL(p‖q) = {kl:.4f} nats")
    a1.set_xscale("log")
    a1.set_ylim(kl - 4 * sigma / math.sqrt(10), kl + 4 * sigma / math.sqrt(10))
    vp.label_axes(a1, "number of flips n", "(1/n) Σ log p(x)/q(x) (nats/flip)",
                  title=f"fair coin p vs biased q (P(heads) = {Q_HEADS})")
    a1.legend(fontsize=7, loc="lower right")
    a2.loglog(n, std, color=c, label="spread over sequences")
    a2.loglog(n, sigma / np.sqrt(n), color=vp.COLORS["analytic"], linestyle="--", label="σ/√n (analytic)")
    vp.label_axes(a2, "number of flips n", "standard deviation (nats/flip)", title="spread shrinks like 1/√n")
    ctx.savefig(fig, NAME)

    idx = np.unique(np.round(np.logspace(0, math.log10(num_flips), 25)).astype(int)) - 1
    return {
        "units": "nats per flip",
        "p_heads": P_HEADS,
        "q_heads": Q_HEADS,
        "kl_pq_nats": {"vikl": kl, "analytic": kl_hand},
        "llr_term_std_nats": sigma,
        "num_sequences": num_sequences,
        "num_flips": num_flips,
        "curves": {
            "n": n[idx],
            "mean": mean[idx],
            "std": std[idx],
            "analytic_std": sigma / np.sqrt(n[idx]),
            "quantile_05": qs[0][idx],
            "quantile_25": qs[1][idx],
            "median": qs[2][idx],
            "quantile_75": qs[3][idx],
            "quantile_95": qs[4][idx],
        },
        "final": {
            "mean": float(mean[-1]),
            "std": float(std[-1]),
            "stderr_of_mean": float(std[-1] / math.sqrt(num_sequences)),
        },
    }


def main(argv=None):
    return _common.main(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
