"""Renyi alpha from strongly negative to 1: from mass-covering to mode-seeking fits.

The Renyi divergence of order alpha, ``D_a(q‖p) = log(∫ q^a p^(1-a) dx) / (a - 1)``
(nats), interpolates between the two KLs: alpha -> 1 gives reverse KL(q‖p)
(mode-seeking), and, through ``D_a(q‖p) = a/(1-a) D_(1-a)(p‖q)``, alpha -> 0
gives forward KL(p‖q) (mass-covering; for a Gaussian q, moment matching),
while strongly negative alpha minimizes ``D_(1-a)(p‖q)`` of high order, which
punishes any place where q is much smaller than p: wider still.

A Gaussian q is fitted with ``vikl.fit(objective=vikl.objectives.Renyi(alpha))``
(the variational Renyi bound of Li and Turner, 2016) to the two-mode target of
``mode_seeking``, from N(0.5, 1.5^2), for alpha in [-8, 1]. Reference: the
exact optimum for each alpha, by quadrature on a grid and a deterministic
optimizer (minimizing ``|D_a(q‖p)|``, which is the divergence for 0 < a < 1 and
``a/(1-a)`` times ``D_(1-a)(p‖q)`` for a < 0), and the analytic alpha -> 0
limit (the mixture's mean and standard deviation). The JSON lists, per alpha,
the fitted and reference mean and standard deviation; the figure shows the
fitted spread against alpha and the fitted densities over the target.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import matplotlib as mpl
import numpy as np
import optax

import vikl
from vikl import plotting as vp
from vikl.experiments import _common
from vikl.experiments.mode_seeking import LOCS, SCALES, WEIGHTS, make_target, mixture_moments, target_log_density

NAME = "alpha_sweep"

ALPHAS = (-8.0, -4.0, -2.0, -1.0, -0.5, 0.25, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)
ALPHAS_QUICK = (-2.0, 1.0)
INIT = (0.5, 1.5)
X_RANGE = (-7.0, 7.0)


def _log_normal(x, loc, scale):
    return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)


def renyi_divergence(alpha, loc, scale, x=None):
    """``D_alpha(q‖p)`` in nats for q = N(loc, scale^2) and the target, by quadrature (float64)."""
    x = np.linspace(-25.0, 25.0, 50001) if x is None else x
    lp, lq = target_log_density(x), _log_normal(x, loc, scale)
    if alpha == 1.0:
        return float(np.trapezoid(np.exp(lq) * (lq - lp), x))
    log_integrand = alpha * lq + (1 - alpha) * lp
    top = log_integrand.max()
    log_int = top + math.log(np.trapezoid(np.exp(log_integrand - top), x))
    return log_int / (alpha - 1)


def reference_optimum(alpha, start):
    """Exact optimum over Gaussians of ``|D_alpha(q‖p)|`` (local, from ``start``)."""
    from scipy.optimize import minimize

    x = np.linspace(-25.0, 25.0, 20001)

    def objective(theta):
        return abs(renyi_divergence(alpha, theta[0], math.exp(theta[1]), x))

    res = minimize(objective, [start[0], math.log(start[1])], method="Nelder-Mead",
                   options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 4000})
    return float(res.x[0]), float(math.exp(res.x[1]))


def run(ctx: _common.Context) -> dict:
    target = make_target()
    alphas = ctx.pick(ALPHAS, ALPHAS_QUICK)
    num_steps = ctx.pick(2500, 600)
    num_samples = ctx.pick(512, 64)
    q0 = vikl.Normal(jnp.float32(INIT[0]), jnp.float32(INIT[1]))
    mean, std = mixture_moments()
    rows = []
    fitted = {}
    for alpha in alphas:
        ctx.log(f"alpha = {alpha:g}: fitting ({num_steps} steps, {num_samples} samples/step)")
        res = vikl.fit(q0, target, objective=vikl.objectives.Renyi(alpha=alpha),
                       optimizer=optax.adam(optax.cosine_decay_schedule(0.05, num_steps, alpha=0.02)),
                       num_steps=num_steps, num_samples=num_samples, key=ctx.key(), **ctx.fit_options())
        q = res.distribution
        fitted[alpha] = q
        ref_loc, ref_scale = reference_optimum(alpha, (float(q.loc), float(q.scale)))
        rows.append({"alpha": alpha, "fit_loc": float(q.loc), "fit_scale": float(q.scale),
                     "reference_loc": ref_loc, "reference_scale": ref_scale,
                     "renyi_divergence_of_fit_nats": renyi_divergence(alpha, float(q.loc), float(q.scale)),
                     "renyi_divergence_of_reference_nats": renyi_divergence(alpha, ref_loc, ref_scale),
                     "final_loss": float(res.losses[-1])})
        ctx.log(f"  fit N({rows[-1]['fit_loc']:.3f}, {rows[-1]['fit_scale']:.3f}^2), "
                f"exact optimum N({ref_loc:.3f}, {ref_scale:.3f}^2)")

    fig, (a1, a2) = vp.subplots(1, 2, width=8.4, height=3.1)
    # Alphas at equal spacing (the transition near alpha = 1 would vanish on a linear axis).
    pos = np.arange(len(rows))
    a1.plot(pos, [r["reference_scale"] for r in rows], color=vp.COLORS["analytic"], linestyle="--",
            marker="s", markersize=4, label="exact optimum (quadrature)")
    a1.plot(pos, [r["fit_scale"] for r in rows], color=vp.COLORS["forward"], marker="o", markersize=5,
            linestyle="none", label="vikl.fit with Renyi(α)")
    zero_pos = float(np.interp(0.0, [r["alpha"] for r in rows], pos))
    a1.plot([zero_pos], [std], marker="*", markersize=11, color=vp.COLORS["extra"], linestyle="none",
            label="α → 0: forward KL (moment matching)")
    for i, s in enumerate(SCALES):
        a1.axhline(s, color=vp.COLORS["target"], linewidth=0.9, linestyle=":",
                   label="standard deviations of the modes" if i == 0 else None)
    a1.set_xticks(pos, [f"{r['alpha']:g}".replace("-", "−") for r in rows], fontsize=8)
    a1.set_ylim(0, max(r["reference_scale"] for r in rows) * 1.15)
    vp.label_axes(a1, "Rényi α (not to scale)", "standard deviation of q", title="fitted spread vs α")
    a1.legend(fontsize=7.5, loc="center left")
    cmap = mpl.colors.LinearSegmentedColormap.from_list("alpha", [vp.COLORS["forward"], vp.COLORS["reverse"]])
    vp.density_1d(a2, target, X_RANGE, label="target p", color=vp.COLORS["target"], fill=True)
    for i, alpha in enumerate(alphas):
        vp.density_1d(a2, fitted[alpha], X_RANGE, color=cmap(i / max(1, len(alphas) - 1)), linewidth=1.3,
                      label=f"α = {alpha:g}" if alpha in (alphas[0], alphas[-1]) else None)
    vp.label_axes(a2, "x", "density", title="fitted q from α = %g (blue) to 1 (orange)" % alphas[0])
    a2.legend(fontsize=7.5, loc="upper left")
    ctx.savefig(fig, NAME)
    return {
        "target": {"weights": WEIGHTS, "locs": LOCS, "scales": SCALES, "mean": mean, "std": std},
        "settings": {"num_steps": num_steps, "num_samples": num_samples, "init": {"loc": INIT[0], "scale": INIT[1]},
                     "objective": "vikl.objectives.Renyi(alpha) (alpha = 1: the ELBO, reverse KL)"},
        "alpha_to_zero_limit": {"loc": mean, "scale": std, "how": "forward KL optimum: moment matching"},
        "sweep": rows,
    }


def main(argv=None):
    return _common.main(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
