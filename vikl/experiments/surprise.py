"""Bayesian surprise: KL between posterior and prior (black swan, Beta-Bernoulli updating).

Surprise of an observation = ``KL(posterior ‖ prior)`` in bits: how far the
data moved belief (Itti and Baldi, 2005).

Black swan: two hypotheses, "black swans exist" (prior probability pi) and
"all swans are white". Seeing a black swan rules out the second, so the
posterior is (1, 0) and the surprise is ``KL((1, 0) ‖ (pi, 1 - pi)) =
log2(1 / pi)``: 6.64 bits for pi = 0.01 and 1 bit for pi = 0.5.

Beta-Bernoulli updating: a coin with unknown heads probability theta and a
uniform prior Beta(1, 1). Each flip x updates Beta(a, b) to Beta(a + x,
b + 1 - x); the surprise of that flip is ``KL(Beta(a + x, b + 1 - x) ‖ Beta(a, b))``
(closed form from vikl). The flips come from a coin with theta = 0.8 that
switches to theta = 0.2 two thirds of the way through. While the coin is
steady the surprise per flip decays like 1/(2n) nats on average, tails (the
rarer outcome) being more surprising than heads; after the switch tails become
common, so the average surprise per flip roughly doubles (JSON: means over the
30 flips before and after the switch) while the posterior drifts towards 0.2.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

import vikl
from vikl import plotting as vp
from vikl.experiments import _common

NAME = "surprise"

PRIORS = (0.01, 0.5)
THETA_BEFORE, THETA_AFTER = 0.8, 0.2


def black_swan(prior: float) -> dict:
    """Surprise (bits) of seeing a black swan with prior P(black swans exist) = prior."""
    prior_probs = jnp.asarray([prior, 1 - prior], jnp.float32)
    posterior = jnp.asarray([1.0, 0.0], jnp.float32)
    return {
        "prior": [prior, 1 - prior],
        "posterior": [1.0, 0.0],
        "surprise_bits": float(_common.bits(vikl.kl_divergence(posterior, prior_probs))),
        "log2_one_over_prior": math.log2(1 / prior),
    }


def beta_updates(flips: np.ndarray, a0: float = 1.0, b0: float = 1.0):
    """Per-flip surprise KL(Beta after ‖ Beta before) in bits, and the parameter path."""
    heads = np.concatenate([[0.0], np.cumsum(flips)])
    tails = np.arange(len(flips) + 1) - heads
    a = jnp.asarray(a0 + heads, jnp.float32)
    b = jnp.asarray(b0 + tails, jnp.float32)
    before = vikl.Beta(a[:-1], b[:-1])
    after = vikl.Beta(a[1:], b[1:])
    return np.asarray(_common.bits(vikl.kl_divergence(after, before)), np.float64), a, b


def beta_quantiles(a, b, level=0.9):
    """Equal-tailed credible interval of Beta(a, b) (SciPy)."""
    from scipy import stats

    tail = (1 - level) / 2
    return stats.beta.ppf(tail, a, b), stats.beta.ppf(1 - tail, a, b)


def run(ctx: _common.Context) -> dict:
    swans = {f"prior={p:g}": black_swan(p) for p in PRIORS}
    for k, v in swans.items():
        ctx.log(f"black swan, {k}: {v['surprise_bits']:.4f} bits (log2(1/prior) = {v['log2_one_over_prior']:.4f})")

    n = ctx.pick(300, 90)
    switch = 2 * n // 3
    k1, k2 = jax.random.split(ctx.key())
    flips = np.concatenate([
        np.asarray(vikl.Bernoulli(probs=jnp.float32(THETA_BEFORE)).sample(k1, (switch,))),
        np.asarray(vikl.Bernoulli(probs=jnp.float32(THETA_AFTER)).sample(k2, (n - switch,))),
    ]).astype(np.float64)
    surprise, a, b = beta_updates(flips)
    steps = np.arange(1, n + 1)
    post_mean = np.asarray(a / (a + b))[1:]

    fig, (a1, a2, a3) = vp.subplots(1, 3, width=10.0, height=3.0)
    labels = [f"prior {p:g}" for p in PRIORS]
    vals = [swans[f"prior={p:g}"]["surprise_bits"] for p in PRIORS]
    a1.bar([0, 1], vals, color=[vp.COLORS["reverse"], vp.COLORS["forward"]], width=0.55)
    for i, v in enumerate(vals):
        a1.text(i, v + 0.1, f"{v:.2f} bits", ha="center", va="bottom")
    a1.set_xticks([0, 1], labels)
    a1.set_ylim(0, max(vals) * 1.25)
    vp.label_axes(a1, "prior P(black swans exist)", "KL(posterior ‖ prior) (bits)",
                  title="surprise of one black swan")
    heads = flips == 1
    a2.plot(steps[heads], surprise[heads], "o", markersize=2.5, color=vp.COLORS["forward"], label="after heads")
    a2.plot(steps[~heads], surprise[~heads], "o", markersize=2.5, color=vp.COLORS["reverse"], label="after tails")
    a2.plot(steps, _common.bits(1 / (2 * (steps + 2))), color=vp.COLORS["analytic"], linestyle="--",
            linewidth=1.2, label="≈ 1/(2(n+2)) nats (average)")
    a2.axvline(switch + 0.5, color=vp.COLORS["target"], linestyle=":", linewidth=1.2)
    a2.set_yscale("log")
    vp.label_axes(a2, "flip n", "surprise of flip n (bits)", title="Beta–Bernoulli: surprise per flip")
    a2.legend(fontsize=7, loc="upper right")
    lo, hi = beta_quantiles(np.asarray(a)[1:], np.asarray(b)[1:])
    a3.fill_between(steps, lo, hi, color=vp.COLORS["forward"], alpha=0.3, linewidth=0, label="90% credible interval")
    a3.plot(steps, post_mean, color=vp.COLORS["forward"], label="posterior mean")
    a3.step(steps, np.where(steps <= switch, THETA_BEFORE, THETA_AFTER), where="mid",
            color=vp.COLORS["target"], linestyle=":", label="true θ")
    a3.set_ylim(0, 1)
    vp.label_axes(a3, "flip n", "θ = P(heads)", title="belief about θ")
    a3.legend(fontsize=7, loc="lower left")
    ctx.savefig(fig, NAME)

    return {
        "units": "bits",
        "black_swan": swans,
        "beta_bernoulli": {
            "prior": {"a": 1.0, "b": 1.0},
            "theta_before_switch": THETA_BEFORE,
            "theta_after_switch": THETA_AFTER,
            "switch_after_flip": switch,
            "flips": flips.astype(int).tolist(),
            "surprise_bits": surprise,
            "posterior_a": np.asarray(a)[1:],
            "posterior_b": np.asarray(b)[1:],
            "posterior_mean": post_mean,
            "mean_surprise_bits_30_flips_before_switch": float(surprise[switch - 30:switch].mean()),
            "mean_surprise_bits_30_flips_after_switch": float(surprise[switch:switch + 30].mean()),
        },
    }


def main(argv=None):
    return _common.main(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
