"""Mean-field Gaussian fits to a correlated Gaussian: reverse KL shrinks, forward KL inflates.

Target p = N(mu, Sigma) in 2-D with unit variances and correlation 0.9;
q = MultivariateNormalDiag (mean-field: independent coordinates). The optima
are analytic (Bishop, PRML section 10.1.2 and figure 10.2):

* reverse KL(q‖p): mean mu, variances ``1 / Lambda_ii`` with ``Lambda =
  Sigma^-1`` (the *conditional* variances, 1 - 0.9^2 = 0.19 here): q is too
  narrow, it under-estimates the marginal spread;
* forward KL(p‖q): mean mu, variances ``Sigma_ii`` (the marginal variances, 1
  here): q matches the marginals and puts mass where p has little.

Both are fitted with ``vikl.fit`` from N(0, I). The figure shows contours of p
and of each fit; the JSON lists fitted means and standard deviations next to
the analytic optima and the closed-form KLs of fits and optima
(``vikl.kl_divergence``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import vikl
from vikl import plotting as vp
from vikl.experiments import _common

NAME = "mean_field"

MU = (0.5, -0.5)
RHO = 0.9
STD = (1.0, 1.0)
HALF_WIDTH = 3.9  # plotting window: mu +- HALF_WIDTH on each axis


def target_params():
    """(mu, Sigma) as float64 NumPy arrays."""
    mu = np.asarray(MU)
    s = np.asarray(STD)
    cov = np.array([[s[0] ** 2, RHO * s[0] * s[1]], [RHO * s[0] * s[1], s[1] ** 2]])
    return mu, cov


def analytic_optima():
    """Mean-field optima: reverse KL -> 1/diag(Sigma^-1), forward KL -> diag(Sigma)."""
    mu, cov = target_params()
    prec = np.linalg.inv(cov)
    return {
        "reverse_kl": {"loc": mu, "scale": np.sqrt(1.0 / np.diag(prec)), "how": "variance = 1 / diag(Sigma^-1) (conditional variances)"},
        "forward_kl": {"loc": mu, "scale": np.sqrt(np.diag(cov)), "how": "variance = diag(Sigma) (marginal variances)"},
    }


def _mvn_diag(loc, scale):
    return vikl.MultivariateNormalDiag(jnp.asarray(loc, jnp.float32), jnp.asarray(scale, jnp.float32))


@jax.jit
def _kls(q, p):
    q = vikl.MultivariateNormal(q.loc, scale_tril=q.scale_tril)
    return vikl.kl_divergence(q, p), vikl.kl_divergence(p, q)


def _kl_both(q, p):
    """Closed-form reverse and forward KL of a mean-field q against p (as full-covariance MVNs)."""
    reverse, forward = _kls(q, p)
    return {"reverse_kl_nats": float(reverse), "forward_kl_nats": float(forward)}


def run(ctx: _common.Context) -> dict:
    mu, cov = target_params()
    p = vikl.MultivariateNormal(jnp.asarray(mu, jnp.float32),
                                covariance_matrix=jnp.asarray(cov, jnp.float32))
    num_steps = ctx.pick(3000, 300)
    num_samples = ctx.pick(128, 32)
    q0 = _mvn_diag([0.0, 0.0], [1.0, 1.0])
    optima = analytic_optima()
    results = {
        "target": {"loc": mu, "covariance": cov, "correlation": RHO},
        "settings": {"num_steps": num_steps, "num_samples": num_samples,
                     "optimizer": "adam, cosine decay from 0.05", "init": {"loc": [0, 0], "scale": [1, 1]}},
        "analytic_optima": {},
        "fits": {},
    }
    fits = {}
    for objective in ("reverse_kl", "forward_kl"):
        ctx.log(f"fitting a mean-field Gaussian by {objective}")
        res = vikl.fit(q0, p, objective=objective,
                       optimizer=optax.adam(optax.cosine_decay_schedule(0.05, num_steps, alpha=0.02)),
                       num_steps=num_steps, num_samples=num_samples, key=ctx.key(), **ctx.fit_options())
        q = res.distribution
        fits[objective] = q
        opt = optima[objective]
        results["analytic_optima"][objective] = {**opt, **_kl_both(_mvn_diag(opt["loc"], opt["scale"]), p)}
        results["fits"][objective] = {"loc": q.loc, "scale": q.scale_diag, **_kl_both(q, p),
                                      "final_loss": float(res.losses[-1])}
        ctx.log(f"{objective}: fitted scale {np.round(np.asarray(q.scale_diag), 3)}, analytic {np.round(opt['scale'], 3)}")
    results["marginal_std_of_target"] = np.sqrt(np.diag(cov))

    fig, axes = vp.subplots(1, 2, width=7.0, height=3.4)
    titles = {"reverse_kl": "(a) reverse KL(q‖p): too narrow", "forward_kl": "(b) forward KL(p‖q): too wide"}
    xlim = (MU[0] - HALF_WIDTH, MU[0] + HALF_WIDTH)
    ylim = (MU[1] - HALF_WIDTH, MU[1] + HALF_WIDTH)
    for ax, objective in zip(axes, ("reverse_kl", "forward_kl")):
        color = vp.COLORS["reverse" if objective == "reverse_kl" else "forward"]
        vp.contour_2d(ax, p, xlim, ylim, color=vp.COLORS["target"], filled=True)
        vp.contour_2d(ax, p, xlim, ylim, color=vp.COLORS["target"], label="target p (ρ = 0.9)")
        opt = optima[objective]
        vp.contour_2d(ax, _mvn_diag(opt["loc"], opt["scale"]), xlim, ylim, masses=(0.5, 0.9),
                      color=vp.COLORS["analytic"], linewidths=6.0, alpha=0.45, label="analytic optimum")
        vp.contour_2d(ax, fits[objective], xlim, ylim, masses=(0.5, 0.9), color=color,
                      linewidths=1.6, label="mean-field q (fitted)")
        vp.label_axes(ax, "x₁", "x₂", title=titles[objective])
        ax.legend(loc="upper left", fontsize=7.5)
    fig.text(0.5, -0.02, "contours enclose 50% and 90% of the probability (and 99% for p)", ha="center", fontsize=8)
    ctx.savefig(fig, NAME)
    return results


def main(argv=None):
    return _common.main(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
