"""Forward vs reverse KL: a Gaussian fitted to a two-mode 1-D target.

Target p: the mixture 0.35 N(-2, 0.6^2) + 0.65 N(2, 0.8^2). A Gaussian q is
fitted with ``vikl.fit`` twice, from the same start N(0, 1):

* forward KL(p‖q) = E_p[log p - log q] (``objective="forward_kl"``, samples of
  p): mass-covering, zero-avoiding, mean-seeking. q must be > 0 wherever p is,
  so it spreads over both modes. Its optimum is analytic: moment matching,
  ``mean(q) = mean(p)`` and ``var(q) = var(p)``;
* reverse KL(q‖p) = E_q[log q - log p] (``objective="reverse_kl"``, needs only
  log p): mode-seeking, zero-forcing. q is pushed to 0 wherever p is small, so
  it settles on one mode with roughly that mode's spread. Its local optima
  are found here by quadrature and a deterministic optimizer, for reference.

Figures: the headline ``mode_seeking`` -- (a) the target alone, then the
forward-KL fit (b) and the reverse-KL fit (c) side by side over it, each with
its reference optimum dashed -- the target alone at single-column size
(``mode_seeking_target``) and the loss curves (``mode_seeking_losses``). The
JSON lists the fitted means and standard deviations next to the analytic
forward-KL optimum and the quadrature reverse-KL optimum, and both KLs of each
fit by quadrature and by ``vikl.estimate_kl``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

import vikl
from vikl import plotting as vp
from vikl.experiments import _common

NAME = "mode_seeking"

WEIGHTS = (0.35, 0.65)
LOCS = (-2.0, 2.0)
SCALES = (0.6, 0.8)
X_RANGE = (-6.0, 6.0)


def make_target():
    """The two-mode target as a ``vikl.Mixture`` of Normals."""
    return vikl.Mixture(weights=jnp.asarray(WEIGHTS, jnp.float32),
                        components=vikl.Normal(jnp.asarray(LOCS, jnp.float32),
                                               jnp.asarray(SCALES, jnp.float32)))


# ---------------------------------------------------------------- references (NumPy, float64)
def mixture_moments(weights=WEIGHTS, locs=LOCS, scales=SCALES):
    """Mean and standard deviation of a 1-D Gaussian mixture (the forward-KL optimum)."""
    w, m, s = map(np.asarray, (weights, locs, scales))
    mean = float(np.sum(w * m))
    var = float(np.sum(w * (s**2 + m**2)) - mean**2)
    return mean, math.sqrt(var)


def _grid():
    return np.linspace(-12.0, 12.0, 8001)


def _log_normal(x, loc, scale):
    return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)


def target_log_density(x, weights=WEIGHTS, locs=LOCS, scales=SCALES):
    """log p(x) of the mixture, in float64 NumPy."""
    comps = np.stack([math.log(w) + _log_normal(x, m, s) for w, m, s in zip(weights, locs, scales)])
    top = comps.max(0)
    return top + np.log(np.exp(comps - top).sum(0))


def quadrature_kls(loc, scale, **target):
    """(forward KL(p‖q), reverse KL(q‖p)) in nats for q = N(loc, scale^2), by quadrature."""
    x = _grid()
    lp, lq = target_log_density(x, **target), _log_normal(x, loc, scale)
    return (float(np.trapezoid(np.exp(lp) * (lp - lq), x)),
            float(np.trapezoid(np.exp(lq) * (lq - lp), x)))


def reverse_kl_optimum(start_loc, start_scale, **target):
    """Local minimum of reverse KL(q‖p) over Gaussians q, by quadrature + Nelder-Mead."""
    from scipy.optimize import minimize

    def objective(theta):
        return quadrature_kls(theta[0], math.exp(theta[1]), **target)[1]

    res = minimize(objective, [start_loc, math.log(start_scale)], method="Nelder-Mead",
                   options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 2000})
    return float(res.x[0]), float(math.exp(res.x[1])), float(res.fun)


# ---------------------------------------------------------------- the experiment
@functools.partial(jax.jit, static_argnames="num_samples")
def both_kls(target, q, key, num_samples):
    """``(KL(p‖q), KL(q‖p))`` by ``vikl.estimate_kl`` (k1), compiled as one program."""
    k1, k2 = jax.random.split(key)
    return (vikl.estimate_kl(target, q, k1, num_samples=num_samples),
            vikl.estimate_kl(q, target, k2, num_samples=num_samples))


def fit_both(ctx, target, num_steps, num_samples):
    """Fits N(0, 1) by forward and by reverse KL; returns the two FitResults."""
    q0 = vikl.Normal(jnp.float32(0.0), jnp.float32(1.0))
    results = {}
    for objective in ("forward_kl", "reverse_kl"):
        ctx.log(f"fitting a Gaussian by {objective} ({num_steps} steps, {num_samples} samples/step)")
        results[objective] = vikl.fit(
            q0, target, objective=objective,
            optimizer=optax.adam(optax.cosine_decay_schedule(0.05, num_steps, alpha=0.02)),
            num_steps=num_steps, num_samples=num_samples, key=ctx.key(), **ctx.fit_options())
    return results


def run(ctx: _common.Context) -> dict:
    target = make_target()
    num_steps = ctx.pick(2000, 500)
    num_samples = ctx.pick(128, 32)
    fits = fit_both(ctx, target, num_steps, num_samples)
    fwd, rev = fits["forward_kl"].distribution, fits["reverse_kl"].distribution

    mean, std = mixture_moments()
    rev_loc = float(rev.loc)
    mode = int(np.argmin(np.abs(np.asarray(LOCS) - rev_loc)))
    opt_loc, opt_scale, opt_kl = reverse_kl_optimum(LOCS[mode], SCALES[mode])

    num_est = ctx.pick(200_000, 20_000)

    def summary(q, name):
        loc, scale = float(q.loc), float(q.scale)
        f_kl, r_kl = quadrature_kls(loc, scale)
        est_f, est_r = both_kls(target, q, ctx.key(), num_est)
        return {"loc": loc, "scale": scale,
                "forward_kl_nats": {"quadrature": f_kl, "estimate_kl": float(est_f.value),
                                    "estimate_kl_stderr": float(est_f.stderr)},
                "reverse_kl_nats": {"quadrature": r_kl, "estimate_kl": float(est_r.value),
                                    "estimate_kl_stderr": float(est_r.stderr)},
                "final_loss": float(fits[name].losses[-1]),
                "psis_khat": None if ctx.quick else fits[name].khat}

    results = {
        "target": {"weights": WEIGHTS, "locs": LOCS, "scales": SCALES, "mean": mean, "std": std},
        "settings": {"num_steps": num_steps, "num_samples": num_samples, "init": {"loc": 0.0, "scale": 1.0},
                     "optimizer": "adam, cosine decay from 0.05"},
        "forward_kl_fit": summary(fwd, "forward_kl"),
        "reverse_kl_fit": summary(rev, "reverse_kl"),
        "analytic_forward_kl_optimum": {"loc": mean, "scale": std,
                                        "forward_kl_nats": quadrature_kls(mean, std)[0],
                                        "how": "moment matching: mean and std of the mixture"},
        "reverse_kl_local_optimum": {"mode": mode, "loc": opt_loc, "scale": opt_scale,
                                     "reverse_kl_nats": opt_kl,
                                     "how": "quadrature (trapezoid, 8001 points on [-12, 12]) + Nelder-Mead, from the mode"},
        "reverse_kl_mode": {"index": mode, "component_loc": LOCS[mode], "component_scale": SCALES[mode]},
    }
    f, r = results["forward_kl_fit"], results["reverse_kl_fit"]
    ctx.log(f"forward KL fit N({f['loc']:.3f}, {f['scale']:.3f}^2); moment matching N({mean:.3f}, {std:.3f}^2)")
    ctx.log(f"reverse KL fit N({r['loc']:.3f}, {r['scale']:.3f}^2); local optimum N({opt_loc:.3f}, {opt_scale:.3f}^2)")

    # Figure 1: the target alone.
    fig, ax = vp.subplots(1, 1, width=4.0, height=2.8)
    vp.density_1d(ax, target, X_RANGE, label="target p (two modes)", color=vp.COLORS["target"], fill=True)
    vp.label_axes(ax, "x", "density p(x)", title="a two-mode target")
    ctx.savefig(fig, f"{NAME}_target")

    # Figure 2 (headline): the target alone, then the two fits side by side over it.
    fig, axes = vp.subplots(1, 3, width=10.8, height=2.9, sharey=True)
    vp.density_1d(axes[0], target, X_RANGE, label="target p", color=vp.COLORS["target"], fill=True)
    axes[0].set_title("(a) target p\n0.35 N(−2, 0.6²) + 0.65 N(2, 0.8²)", fontsize=10)
    axes[0].set_xlabel("x")
    axes[0].legend(loc="upper left", fontsize=7.5)
    panels = (
        (axes[1], fwd, "forward", "(b) forward KL(p‖q)",
         "mass-covering: q > 0 wherever p > 0", (mean, std), "moment matching (analytic)"),
        (axes[2], rev, "reverse", "(c) reverse KL(q‖p)",
         "mode-seeking: q ≈ 0 wherever p ≈ 0", (opt_loc, opt_scale), "local optimum (quadrature)"),
    )
    for ax, q, color, title, subtitle, ref, ref_label in panels:
        vp.density_1d(ax, target, X_RANGE, label="target p", color=vp.COLORS["target"], fill=True)
        vp.density_1d(ax, q, X_RANGE, label=f"q fitted: N({float(q.loc):.2f}, {float(q.scale):.2f}²)",
                      color=vp.COLORS[color])
        vp.density_1d(ax, vikl.Normal(jnp.float32(ref[0]), jnp.float32(ref[1])), X_RANGE,
                      label=ref_label, color=vp.COLORS["analytic"], linestyle=(0, (3, 2)), linewidth=1.4)
        ax.set_title(f"{title}\n{subtitle}", fontsize=10)
        ax.set_xlabel("x")
        ax.legend(loc="upper left", fontsize=7.5)
    axes[0].set_ylabel("density")
    axes[0].set_ylim(0, 0.58)
    ctx.savefig(fig, NAME)

    # Figure 3: loss curves.
    fig, (a1, a2) = vp.subplots(1, 2, width=7.6, height=2.7)
    vp.loss_curve(a1, fits["forward_kl"].losses, color=vp.COLORS["forward"], smooth=max(1, num_steps // 50),
                  ylabel="loss (nats)", label="loss: estimate of KL(p‖q)")
    a1.axhline(results["forward_kl_fit"]["forward_kl_nats"]["quadrature"], color=vp.COLORS["analytic"],
               linestyle="--", linewidth=1, label="KL(p‖q) of the fit")
    vp.label_axes(a1, title="forward KL fit", legend=True)
    vp.loss_curve(a2, fits["reverse_kl"].losses, color=vp.COLORS["reverse"], smooth=max(1, num_steps // 50),
                  ylabel="loss (nats)", label="loss: estimate of KL(q‖p)")
    a2.axhline(opt_kl, color=vp.COLORS["analytic"], linestyle="--", linewidth=1, label="local optimum")
    vp.label_axes(a2, title="reverse KL fit", legend=True)
    ctx.savefig(fig, f"{NAME}_losses")
    return results


def main(argv=None):
    return _common.main(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
