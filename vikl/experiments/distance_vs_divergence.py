"""Squared Euclidean distance between densities vs KL on overlapping and disjoint pairs.

Treat two densities as vectors (functions of x) and measure them with the
squared Euclidean (L2) distance ``D2(p, q) = ∫ (p(x) - q(x))^2 dx`` (units:
1/x). It misjudges overlap:

* overlapping pair: ``p = N(0, 0.1^2)``, ``q = N(0.1, 0.1^2)`` (shifted by one
  standard deviation, overlap coefficient 0.62);
* disjoint pair: ``p = N(0, 1)``, ``q = N(6, 1)`` (six standard deviations
  apart, overlap coefficient 0.003).

``D2`` calls the disjoint pair *closer* (0.56 vs 1.25), because it is governed
by the peak heights (``1 / scale``), saturates once the densities stop
overlapping, and changes with the unit of x (rescaling x by c divides it by c).
``KL(p‖q)`` (nats) ranks by overlap -- 0.5 vs 18 -- and is unit-free.

Numbers: ``D2`` by the trapezoid rule on vikl densities and in closed form,
``(1 - exp(-d^2 / (4 s^2))) / (s sqrt(pi))`` for equal scales ``s`` and shift
``d``; KL from ``vikl.kl_divergence`` next to ``d^2 / (2 s^2)``; the overlap
coefficient ``∫ min(p, q) dx`` numerically and as ``2 Phi(-d / (2 s))``.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

import vikl
from vikl import plotting as vp
from vikl.experiments import _common

NAME = "distance_vs_divergence"

PAIRS = {
    "overlapping": {"p": (0.0, 0.1), "q": (0.1, 0.1)},
    "disjoint": {"p": (0.0, 1.0), "q": (6.0, 1.0)},
}
RESCALE = 10.0  # change of unit for the invariance check (e.g. m -> dm)


def _normal(loc, scale):
    return vikl.Normal(jnp.float32(loc), jnp.float32(scale))


def _grid(p, q, num=20001):
    lo = min(p[0] - 12 * p[1], q[0] - 12 * q[1])
    hi = max(p[0] + 12 * p[1], q[0] + 12 * q[1])
    return np.linspace(lo, hi, num)


def _pair_numbers(p_par, q_par, scale_x=1.0):
    """D2, KL and overlap for a pair, with x measured in units 1/scale_x."""
    p_par = (p_par[0] * scale_x, p_par[1] * scale_x)
    q_par = (q_par[0] * scale_x, q_par[1] * scale_x)
    p, q = _normal(*p_par), _normal(*q_par)
    x = _grid(p_par, q_par)
    xf = jnp.asarray(x, dtype=jnp.float32)
    dp = np.asarray(jnp.exp(p.log_prob(xf)), np.float64)
    dq = np.asarray(jnp.exp(q.log_prob(xf)), np.float64)
    d, s = abs(q_par[0] - p_par[0]), p_par[1]
    same_scale = math.isclose(p_par[1], q_par[1])
    return {
        "p": {"loc": p_par[0], "scale": p_par[1]},
        "q": {"loc": q_par[0], "scale": q_par[1]},
        "squared_l2": {
            "numerical": float(np.trapezoid((dp - dq) ** 2, x)),
            "analytic": (1 - math.exp(-d * d / (4 * s * s))) / (s * math.sqrt(math.pi)) if same_scale else None,
        },
        "kl_pq_nats": {
            "vikl": float(vikl.kl_divergence(p, q)),
            "analytic": d * d / (2 * s * s) if same_scale else None,
        },
        "kl_qp_nats": float(vikl.kl_divergence(q, p)),
        "overlap_coefficient": {
            "numerical": float(np.trapezoid(np.minimum(dp, dq), x)),
            "analytic": math.erfc(d / (2 * s) / math.sqrt(2)) if same_scale else None,
        },
    }


def _sweep(shifts, scale):
    p = _normal(0.0, scale)
    q = vikl.Normal(jnp.asarray(shifts * scale, jnp.float32), jnp.float32(scale))
    kl = np.asarray(vikl.kl_divergence(p, q))
    d2 = (1 - np.exp(-(shifts**2) / 4)) / (scale * math.sqrt(math.pi))
    return d2, kl


def run(ctx: _common.Context) -> dict:
    pairs = {}
    for name, par in PAIRS.items():
        nums = _pair_numbers(par["p"], par["q"])
        nums[f"x_rescaled_by_{RESCALE:g}"] = {
            k: (v["numerical"] if k == "squared_l2" else v["vikl"])
            for k, v in _pair_numbers(par["p"], par["q"], RESCALE).items()
            if k in ("squared_l2", "kl_pq_nats")
        }
        pairs[name] = nums
        ctx.log(f"{name}: D2 = {nums['squared_l2']['numerical']:.4f}, "
                f"KL(p||q) = {nums['kl_pq_nats']['vikl']:.4f} nats, "
                f"overlap = {nums['overlap_coefficient']['numerical']:.4f}")

    closer_d2 = min(pairs, key=lambda k: pairs[k]["squared_l2"]["numerical"])
    closer_kl = min(pairs, key=lambda k: pairs[k]["kl_pq_nats"]["vikl"])
    closer_overlap = max(pairs, key=lambda k: pairs[k]["overlap_coefficient"]["numerical"])

    # Figure 1: the two pairs.
    fig, axes = vp.subplots(1, 2, width=7.6, height=3.0)
    for ax, (name, par) in zip(axes, PAIRS.items()):
        nums = pairs[name]
        p, q = _normal(*par["p"]), _normal(*par["q"])
        lo = min(par["p"][0], par["q"][0]) - 4 * par["p"][1]
        hi = max(par["p"][0], par["q"][0]) + 4 * par["q"][1]
        x, dp = vp.density_1d(ax, p, (lo, hi), label=f"p = N({par['p'][0]:g}, {par['p'][1]:g}²)",
                              color=vp.COLORS["forward"])
        _, dq = vp.density_1d(ax, q, (lo, hi), label=f"q = N({par['q'][0]:g}, {par['q'][1]:g}²)",
                              color=vp.COLORS["reverse"])
        ax.fill_between(x, np.minimum(dp, dq), color=vp.COLORS["target"], alpha=0.45,
                        linewidth=0, label="overlap")
        text = (f"squared distance ∫(p−q)² = {nums['squared_l2']['numerical']:.2f}\n"
                f"KL(p‖q) = {nums['kl_pq_nats']['vikl']:.2f} nats\n"
                f"overlap ∫min(p,q) = {nums['overlap_coefficient']['numerical']:.3f}")
        ax.text(0.02, 0.97, text, transform=ax.transAxes, va="top", fontsize=8)
        ax.set_ylim(0, dp.max() * 1.55)
        vp.label_axes(ax, "x", "density (1/x)", title=f"{name} pair")
        ax.legend(loc="upper right", fontsize=8)
    ctx.savefig(fig, NAME)

    # Figure 2: sweep over the shift, in standard deviations, for two widths.
    shifts = np.linspace(0.0, 8.0, 161)
    sweep = {"shift_over_scale": shifts, "squared_l2": {}, "kl_pq_nats": {}}
    fig, (a1, a2) = vp.subplots(1, 2, width=7.6, height=2.9)
    for scale, color, ls in ((0.1, vp.COLORS["forward"], "-"), (1.0, vp.COLORS["reverse"], "--")):
        d2, kl = _sweep(shifts, scale)
        sweep["squared_l2"][f"scale={scale:g}"] = d2
        sweep["kl_pq_nats"][f"scale={scale:g}"] = kl
        a1.plot(shifts, d2, color=color, linestyle=ls, label=f"scale {scale:g}")
        a2.plot(shifts, kl, color=color, linestyle=ls, label=f"scale {scale:g}")
    a1.set_yscale("log")
    a1.set_ylim(1e-3, 20)
    vp.label_axes(a1, "shift d / scale (standard deviations)", "∫(p−q)² dx (1/x)",
                  title="squared distance: unit-bound, saturates")
    vp.label_axes(a2, "shift d / scale (standard deviations)", "KL(p‖q) (nats)",
                  title="KL: same curve for every width")
    ctx.savefig(fig, f"{NAME}_sweep")

    return {
        "definitions": {
            "squared_l2": "∫ (p(x) - q(x))^2 dx, trapezoid rule on 20001 points (units 1/x)",
            "kl_pq_nats": "KL(p‖q) = E_p[log p - log q], vikl.kl_divergence, nats",
            "overlap_coefficient": "∫ min(p(x), q(x)) dx (unitless, 1 = identical, 0 = disjoint)",
            "rescaled": f"the same pair with x measured in units {RESCALE:g} times smaller",
        },
        "pairs": pairs,
        "closer_pair": {"squared_l2": closer_d2, "kl": closer_kl, "overlap": closer_overlap},
        "sweep": sweep,
    }


def main(argv=None):
    return _common.main(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
