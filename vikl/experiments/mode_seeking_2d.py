"""Forward vs reverse KL in 2-D: full-rank Gaussian and flow fits to a mixture and a banana.

Targets:
* ``mixture``: three well-separated Gaussian modes, weights (0.3, 0.3, 0.4);
* ``banana``: x1 ~ N(0, 1.5^2), x2 | x1 ~ N(0.5 (x1^2 - 1.5^2), 0.5^2) -- a
  curved ridge. Written below as a 20-line ``vikl.Distribution`` subclass
  (``sample`` + ``log_prob``): any such object is a target.

Families: a full-rank Gaussian (``vikl.MultivariateNormal``, init N(m0, I)) and
a RealNVP flow (``vikl.RealNVP.initialize``, equal to N(m0, I) at init), each fitted
by ``vikl.fit`` under forward KL(p‖q) (target samples) and reverse KL(q‖p)
(target log-density only).

The Gaussian's forward-KL optimum is analytic (moment matching: the target's
mean and covariance, listed in the JSON). Under reverse KL it locks onto one
mode of the mixture and hugs the inside of the banana; the flow is flexible
enough to cover several modes in both directions, but reverse KL still lets it
drop mass. The start m0 is (0, 0.5) for the mixture -- from its exact centre
reverse KL can stall with the Gaussian stretched between two modes (a local
optimum at about 2 nats against 0.9 on one mode) -- and (0, 0) for the banana.
The JSON lists, for every fit, the Monte-Carlo forward and reverse
KL (``vikl.estimate_kl``, nats, with standard errors), the PSIS k-hat of
the fit (``FitResult.khat``: above 0.7 the importance weights p/q are
unreliable; it cannot see a mode that q never samples) and, for the mixture,
the share of q's samples nearest to each mode.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

import vikl
from vikl import plotting as vp
from vikl.experiments import _common

NAME = "mode_seeking_2d"

MIX_WEIGHTS = (0.3, 0.3, 0.4)
MIX_LOCS = ((-2.2, -1.4), (2.2, -1.4), (0.0, 2.2))
MIX_SCALE = 0.55
BANANA_A, BANANA_B, BANANA_S = 1.5, 0.5, 0.5
# Initial location of q. For the mixture it is a little off the centre: from the exact
# centre, reverse KL can stall with q stretched between two modes (a local optimum with
# KL(q‖p) of about 2 nats, against 0.9 on one mode).
INIT_LOC = {"mixture": (0.0, 0.5), "banana": (0.0, 0.0)}
# Which families are fitted to which target (both objectives each). --quick fits one
# family per target (4 fits instead of 8): compilation dominates short runs.
PLAN = {"mixture": ("full_rank", "flow"), "banana": ("full_rank", "flow")}
PLAN_QUICK = {"mixture": ("full_rank",), "banana": ("flow",)}
WINDOWS = {"mixture": ((-4.2, 4.2), (-3.6, 4.2)), "banana": ((-4.5, 4.5), (-2.8, 5.2))}


class Banana(vikl.Distribution):
    """Banana-shaped 2-D density: x1 ~ N(0, a^2), x2 | x1 ~ N(b (x1^2 - a^2), s^2).

    The map (z1, z2) -> (a z1, s z2 + b (a^2 z1^2 - a^2)) has unit-triangular
    Jacobian, so log p is the sum of the two Normal log densities. Mean 0,
    covariance diag(a^2, s^2 + 2 b^2 a^4).
    """

    curvature: jax.Array = vikl.param(vikl.constraints.real)

    @property
    def event_shape(self):
        return (2,)

    def sample(self, key, sample_shape=()):
        z = jax.random.normal(key, tuple(sample_shape) + (2,), self.curvature.dtype)
        x1 = BANANA_A * z[..., 0]
        x2 = BANANA_S * z[..., 1] + self.curvature * (x1 * x1 - BANANA_A**2)
        return jnp.stack([x1, x2], axis=-1)

    def log_prob(self, x):
        x1, x2 = x[..., 0], x[..., 1]
        r = x2 - self.curvature * (x1 * x1 - BANANA_A**2)
        c = math.log(2 * math.pi * BANANA_A * BANANA_S)
        return -0.5 * (x1 / BANANA_A) ** 2 - 0.5 * (r / BANANA_S) ** 2 - c


def make_targets():
    """The two targets, by name."""
    mixture = vikl.Mixture(
        weights=jnp.asarray(MIX_WEIGHTS, jnp.float32),
        components=vikl.MultivariateNormalDiag(jnp.asarray(MIX_LOCS, jnp.float32),
                                               jnp.full((3, 2), MIX_SCALE, jnp.float32)))
    return {"mixture": mixture, "banana": Banana(jnp.float32(BANANA_B))}


def target_moments():
    """Analytic mean and covariance of each target (the full-rank forward-KL optimum)."""
    w, m = np.asarray(MIX_WEIGHTS), np.asarray(MIX_LOCS)
    mean = w @ m
    cov = np.eye(2) * MIX_SCALE**2 + (w[:, None, None] * np.einsum("ki,kj->kij", m - mean, m - mean)).sum(0)
    banana_cov = np.diag([BANANA_A**2, BANANA_S**2 + 2 * BANANA_B**2 * BANANA_A**4])
    return {"mixture": {"mean": mean, "covariance": cov},
            "banana": {"mean": np.zeros(2), "covariance": banana_cov}}


def initial_families(key, quick: bool, loc=(0.0, 0.0)):
    """Initial q of each family: N(loc, I) and a RealNVP that starts as that Gaussian."""
    loc = jnp.asarray(loc, jnp.float32)
    return {
        "full_rank": vikl.MultivariateNormal(loc, scale_tril=jnp.eye(2, dtype=jnp.float32)),
        "flow": vikl.RealNVP.initialize(2, key, num_layers=2 if quick else 6, hidden_size=16 if quick else 32,
                                        loc=loc),
    }


@functools.partial(jax.jit, static_argnames=("num_kl", "num_samples"))
def _evaluate(target, q, key, num_kl, num_samples):
    k1, k2, k3 = jax.random.split(key, 3)
    return (vikl.estimate_kl(target, q, k1, num_samples=num_kl),
            vikl.estimate_kl(q, target, k2, num_samples=num_kl),
            q.sample(k3, (num_samples,)))


def evaluate(target, q, key, num_kl, num_samples):
    """``KL(p‖q)`` and ``KL(q‖p)`` by ``vikl.estimate_kl`` (k1), q's sample mean and
    covariance, and the share of q's samples nearest each mixture mode (one program)."""
    fwd, rev, x = _evaluate(target, q, key, num_kl=num_kl, num_samples=num_samples)
    x = np.asarray(x, np.float64)
    d = ((x[:, None, :] - np.asarray(MIX_LOCS)[None]) ** 2).sum(-1)
    return fwd, rev, x.mean(0), np.cov(x.T), np.bincount(d.argmin(1), minlength=3) / num_samples


def run(ctx: _common.Context) -> dict:
    targets = make_targets()
    key_flow = ctx.key()
    steps = {"full_rank": ctx.pick(2500, 150), "flow": ctx.pick(4000, 150)}
    num_samples = ctx.pick(256, 32)
    moments = target_moments()
    fits, results = {}, {"targets": {}, "settings": {"num_steps": steps, "num_samples": num_samples,
                                                     "optimizer": "adam, cosine decay from 0.01 (flow) / 0.03 (Gaussian)"}}
    for tname, target in targets.items():
        results["targets"][tname] = {"analytic_moments": moments[tname], "init_loc": INIT_LOC[tname], "fits": {}}
        families = initial_families(key_flow, ctx.quick, INIT_LOC[tname])
        for fname in ctx.pick(PLAN, PLAN_QUICK)[tname]:
            q0 = families[fname]
            for objective in ("forward_kl", "reverse_kl"):
                ctx.log(f"{tname}: {fname} by {objective} ({steps[fname]} steps)")
                lr = 0.01 if fname == "flow" else 0.03
                res = vikl.fit(q0, target, objective=objective,
                               optimizer=optax.adam(optax.cosine_decay_schedule(lr, steps[fname], alpha=0.05)),
                               num_steps=steps[fname], num_samples=num_samples, key=ctx.key(),
                               **ctx.fit_options())
                q = res.distribution
                fits[tname, fname, objective] = q
                fwd, rev, mean, cov, shares = evaluate(target, q, ctx.key(), ctx.pick(100_000, 5_000),
                                                       ctx.pick(200_000, 20_000))
                entry = {"final_loss": float(res.losses[-1]), "psis_khat": res.khat if not ctx.quick else None,
                         "is_ess": res.ess if not ctx.quick else None,
                         "forward_kl_nats": {"value": float(fwd.value), "stderr": float(fwd.stderr)},
                         "reverse_kl_nats": {"value": float(rev.value), "stderr": float(rev.stderr)}}
                entry.update(sample_mean=mean, sample_covariance=cov)
                if fname == "full_rank":
                    entry.update(loc=q.loc, covariance=q.covariance_matrix)
                if tname == "mixture":
                    entry["mode_shares"] = shares
                results["targets"][tname]["fits"][f"{fname}/{objective}"] = entry
                ctx.log(f"  KL(p||q) = {entry['forward_kl_nats']['value']:.3f}, "
                        f"KL(q||p) = {entry['reverse_kl_nats']['value']:.3f} nats")

    plan = ctx.pick(PLAN, PLAN_QUICK)
    ncols = 2 * max(len(v) for v in plan.values())
    names = {"full_rank": "full-rank Gaussian", "flow": "RealNVP flow",
             "forward_kl": "forward KL(p‖q)", "reverse_kl": "reverse KL(q‖p)"}
    fig, axes = vp.subplots(len(targets), ncols, width=2.4 * ncols, height=2.5 * len(targets) + 0.2,
                            squeeze=False)
    for row, (tname, target) in enumerate(targets.items()):
        xlim, ylim = WINDOWS[tname]
        columns = [(f, o) for f in plan[tname] for o in ("forward_kl", "reverse_kl")]
        for col, (fname, objective) in enumerate(columns):
            ax = axes[row, col]
            color = vp.COLORS["forward" if objective == "forward_kl" else "reverse"]
            vp.contour_2d(ax, target, xlim, ylim, color=vp.COLORS["target"], filled=True, num=160)
            vp.contour_2d(ax, fits[tname, fname, objective], xlim, ylim, color=color, num=160)
            ax.set_xticks([-4, -2, 0, 2, 4])
            if row == 0 or plan[tname] != plan[list(targets)[0]]:
                ax.set_title(f"{names[fname]}\n{names[objective]}", fontsize=9.5)
            if row == len(targets) - 1:
                ax.set_xlabel("x₁")
            if col == 0:
                ax.set_ylabel(f"{tname}\nx₂")
    handles = [
        Patch(color=vp.COLORS["target"], alpha=0.5, label="target p"),
        Line2D([], [], color=vp.COLORS["forward"], label="q fitted by forward KL"),
        Line2D([], [], color=vp.COLORS["reverse"], label="q fitted by reverse KL"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8.5)
    ctx.savefig(fig, NAME)
    return results


def main(argv=None):
    return _common.main(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
