"""Normalizing flows fitted by reverse KL: vikl's flows vs flowjax (FL1 of BENCH_PROBLEMS.md).

Targets (normalized log densities, one jnp function each, used by both libraries):

* banana:    x1 ~ N(0, 2^2), x2 | x1 ~ N(0.5 x1^2 - 2, 1)                      (d = 2)
* funnel2/10: v = x0 ~ N(0, 3^2), x_i | v ~ N(0, e^v) for i >= 1 (Neal)       (d = 2, 10)
* ring:      log p(x) = -(|x| - 3)^2 / (2 * 0.3^2) - log Z, with
             Z = 2 pi [s^2 exp(-9 / (2 s^2)) + 3 s sqrt(2 pi) Phi(3 / s)], s = 0.3
             (closed form of 2 pi int_0^inf r exp(-(r - 3)^2 / (2 s^2)) dr; checked
             against scipy quadrature at start)                                (d = 2)

Methods (one process; the same budget for all): 5000 Adam(1e-3) steps, 64 draws
per step, plain reparameterized ELBO gradient (log q from the flow's own
``sample_and_log_prob``, no sticking-the-landing), 4 flow layers, conditioner
width 64 with 2 hidden layers, spline knots 8 on [-6, 6].

* vikl: ``vikl.fit(q0, log_p, objective=ReverseKL(num_samples=64),
  optimizer=optax.adam(1e-3), num_steps=N, key=k, progress=False)`` with
  ``vikl.families.real_nvp``, ``spline_flow`` and ``iaf`` (each used when
  vikl.families has it).
* flowjax: ``coupling_flow`` with ``RationalQuadraticSpline(knots=8, interval=6)``,
  with its default affine transformer (RealNVP's counterpart) and
  ``masked_autoregressive_flow`` (affine), all with ``invert=False`` (flowjax's
  variational-inference example: fast ``sample_and_log_prob``; for the MAF
  this makes the parallel direction the sampling one, i.e. an IAF). Trained on
  ``flowjax.train.losses.ElboLoss(log_p, 64)`` with the parameter partition
  of ``fit_to_key_based_loss``, in one ``eqx.filter_jit`` + ``lax.scan``
  (the same per-step keys, so it gives what ``fit_to_key_based_loss`` gives;
  the script checks this) -- the fastest fair path; ``fit_to_key_based_loss``
  itself (a Python loop, one dispatch and one host sync per step) is timed
  against it on the first target (``--loop-steps``, default 1000 steps).

Metrics per (target, method), over ``--repeats`` fits with seeds 0..R-1 (the
timed calls; seed 0 also runs once cold first): reverse KL(q||p) =
-mean(log p(x) - log q(x)) over ``--draws`` draws of the fitted q (the same
estimator and key for every method; absolute since p is normalized), its
Monte-Carlo standard error, PSIS k-hat of those log weights
(``vikl._diagnostics.psis_khat``), wall-clock us per step (median over the
timed fits, compile excluded), compile s = first call - median call, and
ratios vikl / flowjax for the paired flows (spline_flow : coupling RQS,
iaf : MAF, real_nvp : coupling affine).

Run:  python -m benchmarks.flows [--quick] [--repeats 3] [--out benchmarks/results/flows.md]
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import vikl  # noqa: E402
from benchmarks._common import block, fmt, machine_line, markdown_table
from vikl._diagnostics import psis_khat  # noqa: E402

STEPS = 5000
NUM_SAMPLES = 64
LR = 1e-3
NUM_LAYERS = 4
HIDDEN = 64
NN_DEPTH = 2  # hidden layers per conditioner (vikl's conditioners have 2)
KNOTS = 8  # flowjax's interior knots: its spline has KNOTS + 1 bins (10 knot positions with the ends)
INTERVAL = 6.0
DRAWS = 20_000
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
RING_RADIUS, RING_SD = 3.0, 0.3


# ----------------------------------------------------------------------------- targets
def _log_normal(x, loc, log_scale):
    z = (x - loc) * jnp.exp(-log_scale)
    return -0.5 * z * z - log_scale - HALF_LOG_2PI


def banana(x):
    """x1 ~ N(0, 2^2), x2 | x1 ~ N(0.5 x1^2 - 2, 1)."""
    return _log_normal(x[0], 0.0, math.log(2.0)) + _log_normal(x[1], 0.5 * x[0] ** 2 - 2.0, 0.0)


def funnel(x):
    """Neal's funnel: v = x0 ~ N(0, 3^2), x_i | v ~ N(0, e^v) (sd e^(v/2))."""
    v = x[0]
    return _log_normal(v, 0.0, math.log(3.0)) + jnp.sum(_log_normal(x[1:], 0.0, 0.5 * v))


def ring_log_normalizer(radius=RING_RADIUS, sd=RING_SD) -> float:
    """log of 2 pi int_0^inf r exp(-(r - radius)^2 / (2 sd^2)) dr (closed form)."""
    from scipy.special import ndtr

    z = sd**2 * math.exp(-(radius**2) / (2 * sd**2)) + radius * sd * math.sqrt(2 * math.pi) * ndtr(radius / sd)
    return math.log(2 * math.pi * z)


RING_LOG_Z = ring_log_normalizer()


def ring(x):
    """log p(x) = -(|x| - 3)^2 / (2 0.3^2) - log Z in 2-D."""
    r = jnp.sqrt(jnp.sum(x * x))
    return -0.5 * ((r - RING_RADIUS) / RING_SD) ** 2 - RING_LOG_Z


def check_ring_normalizer() -> float:
    """Relative difference between the closed-form Z and scipy quadrature."""
    from scipy.integrate import quad

    f = lambda r: 2 * math.pi * r * math.exp(-0.5 * ((r - RING_RADIUS) / RING_SD) ** 2)  # noqa: E731
    z, _ = quad(f, 0.0, RING_RADIUS + 40 * RING_SD, points=[RING_RADIUS], epsabs=0, epsrel=1e-12)
    return abs(math.exp(RING_LOG_Z) - z) / z


@dataclass
class Target:
    name: str
    dim: int
    log_p: Callable
    definition: str


TARGETS = {
    "banana": Target("banana", 2, banana, "x1 ~ N(0, 2²), x2 | x1 ~ N(0.5 x1² − 2, 1)"),
    "funnel2": Target("funnel2", 2, funnel, "v = x0 ~ N(0, 3²), x1 | v ~ N(0, e^v)"),
    "funnel10": Target("funnel10", 10, funnel, "v = x0 ~ N(0, 3²), x1..x9 | v ~ N(0, e^v) iid"),
    "ring": Target("ring", 2, ring, "log p = −(|x| − 3)²/(2·0.3²) − log Z, Z = 2π[s² e^{−9/(2s²)} + 3 s √(2π) Φ(3/s)], s = 0.3"),
}


# ----------------------------------------------------------------------------- methods
@dataclass
class Method:
    """One flow of one library: ``prepare(seed) -> state`` (untimed: builds q0),
    ``fit(state) -> fitted q`` (timed), ``num_params(state)``."""

    label: str
    library: str
    prepare: Callable
    fit: Callable
    num_params: Callable
    config: str


def _count(tree) -> int:
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(tree)))


def _vikl_kwargs(factory, want):
    """The keyword arguments of ``want`` that ``factory`` accepts (a spline's interval
    may be called ``interval``, ``bound`` or ``tail_bound``)."""
    params = inspect.signature(factory).parameters
    out = {k: v for k, v in want.items() if k in params}
    for name in ("interval", "bound", "tail_bound", "range_max"):
        if name in params:
            out[name] = INTERVAL
            break
    return out


def vikl_method(name, target, steps):
    factory = getattr(vikl.families, name)
    kwargs = _vikl_kwargs(factory, {"num_layers": NUM_LAYERS, "hidden_size": HIDDEN, "num_bins": KNOTS + 1})
    objective = vikl.objectives.ReverseKL(num_samples=NUM_SAMPLES)
    optimizer = optax.adam(LR)  # one object: vikl.fit compiles once per structure

    def prepare(seed):
        k_init, k_fit = jax.random.split(jax.random.key(seed))
        return block(factory(target.dim, k_init, **kwargs)), k_fit

    def fit(state):
        q0, k_fit = state
        res = vikl.fit(q0, target.log_p, objective=objective, optimizer=optimizer,
                       num_steps=steps, key=k_fit, progress=False)
        return block(res.distribution)

    def num_params(state):
        return _count(eqx.filter(state[0], eqx.is_inexact_array))

    cfg = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    return Method(f"vikl {name}", "vikl", prepare, fit, num_params, f"vikl.families.{name}(d, key, {cfg})")


def _flowjax_build(kind, dim, key):
    from flowjax.bijections import RationalQuadraticSpline
    from flowjax.distributions import Normal
    from flowjax.flows import coupling_flow, masked_autoregressive_flow

    common = dict(base_dist=Normal(jnp.zeros(dim)), flow_layers=NUM_LAYERS, nn_width=HIDDEN,
                  nn_depth=NN_DEPTH, invert=False)
    if kind == "coupling_rqs":
        return coupling_flow(key, transformer=RationalQuadraticSpline(knots=KNOTS, interval=INTERVAL), **common)
    if kind == "coupling_affine":
        return coupling_flow(key, **common)
    return masked_autoregressive_flow(key, **common)


def _partition(flow):
    """The split fit_to_key_based_loss uses: trainable inexact arrays vs the rest."""
    import paramax

    return eqx.partition(flow, eqx.is_inexact_array, is_leaf=lambda x: isinstance(x, paramax.NonTrainable))


def flowjax_method(kind, target, steps, documented_loop=False):
    from flowjax.train import fit_to_key_based_loss
    from flowjax.train.losses import ElboLoss

    loss = ElboLoss(target.log_p, num_samples=NUM_SAMPLES)
    optimizer = optax.adam(LR)

    @eqx.filter_jit
    def run(flow, key):
        # Partition inside the compiled function: the NonTrainable leaves (e.g. the
        # permutations) stay traced arrays here; passed as a static argument they
        # would hash by identity and recompile for every new flow.
        params, static = _partition(flow)

        def body(carry, k):
            p, s = carry
            value, grads = eqx.filter_value_and_grad(loss)(p, static, k)
            updates, s = optimizer.update(grads, s, p)
            return (eqx.apply_updates(p, updates), s), value

        (params, _), losses = jax.lax.scan(body, (params, optimizer.init(params)), jax.random.split(key, steps))
        return eqx.combine(params, static), losses

    template = []

    def prepare(seed):
        # flowjax's coupling and autoregressive layers keep a closure made per build
        # (get_ravelled_pytree_constructor) among their static fields, so every new flow
        # compiles every jitted function anew. The seed's fresh arrays go into the first
        # flow's structure instead: the same initialization, compiled once.
        k_init, k_fit = jax.random.split(jax.random.key(seed))
        flow = _flowjax_build(kind, target.dim, k_init)
        if not template:
            template.append(flow)
        arrays = eqx.filter(flow, eqx.is_array)
        static = eqx.filter(template[0], eqx.is_array, inverse=True)
        return block(eqx.combine(arrays, static)), k_fit

    def fit_scan(state):
        flow, k_fit = state
        return block(run(flow, k_fit)[0])

    def fit_documented(state):
        flow, k_fit = state
        flow, _ = fit_to_key_based_loss(k_fit, flow, loss_fn=loss, steps=steps, optimizer=optimizer,
                                        show_progress=False)
        return block(flow)

    names = {"coupling_rqs": f"coupling_flow RQS(knots={KNOTS}, interval={INTERVAL:g})",
             "coupling_affine": "coupling_flow affine", "maf": "masked_autoregressive_flow affine"}
    how = "fit_to_key_based_loss loop" if documented_loop else "jit(scan)"
    cfg = (f"flowjax.flows.{names[kind].split()[0]}(key, base_dist=Normal(zeros(d)), flow_layers={NUM_LAYERS}, "
           f"nn_width={HIDDEN}, nn_depth={NN_DEPTH}, invert=False"
           + (f", transformer=RationalQuadraticSpline(knots={KNOTS}, interval={INTERVAL:g})" if kind == "coupling_rqs"
              else "") + f"); ElboLoss(log_p, {NUM_SAMPLES}); {how}")
    return Method(f"flowjax {names[kind]}" + (" [fit_to_key_based_loss]" if documented_loop else ""),
                  "flowjax", prepare, fit_documented if documented_loop else fit_scan,
                  lambda state: _count(_partition(state[0])[0]), cfg)


PAIRS = {"vikl spline_flow": "coupling_rqs", "vikl iaf": "maf", "vikl real_nvp": "coupling_affine"}


FLOWJAX_KINDS = ("coupling_affine", "coupling_rqs", "maf")


def methods_for(target, steps):
    out = []
    for name in ("real_nvp", "spline_flow", "iaf"):
        if hasattr(vikl.families, name):
            out.append(vikl_method(name, target, steps))
    for kind in FLOWJAX_KINDS:
        out.append(flowjax_method(kind, target, steps))
    return out


def documented_loop_check(target, steps, repeats, log):
    """flowjax's own ``fit_to_key_based_loss`` (Python loop, one dispatch and one
    ``loss.item()`` host sync per step) vs the jit(scan) loop used above, on the same
    initial flows and keys: wall us/step of each and max |parameter difference|."""
    out = []
    for kind in FLOWJAX_KINDS:
        scan = flowjax_method(kind, target, steps)
        loop = flowjax_method(kind, target, steps, documented_loop=True)
        state = scan.prepare(0)
        walls = {"scan": [], "loop": []}
        firsts = {}
        fitted = {}
        for name, m in (("scan", scan), ("loop", loop)):
            firsts[name], _, fitted[name] = _timed_call(m.fit, state)
        for _ in range(repeats):
            for name, m in (("loop", loop), ("scan", scan)):
                walls[name].append(_timed_call(m.fit, state)[0])
        row = {"target": target.name, "flow": scan.label, "steps": steps,
               "max_param_diff": _max_param_diff(fitted["scan"], fitted["loop"])}
        for name in walls:
            med = statistics.median(walls[name])
            row[f"{name}_us_per_step"] = 1e6 * med / steps
            row[f"{name}_first_s"] = firsts[name]
        log(f"  documented loop, {target.name} {scan.label}: loop {row['loop_us_per_step']:.0f} us/step, "
            f"scan {row['scan_us_per_step']:.0f} us/step, max |param diff| {row['max_param_diff']:.2g}")
        out.append(row)
    return out


# ----------------------------------------------------------------------------- evaluation
@eqx.filter_jit
def _log_weights(q, log_p, key, n):
    x, log_q = q.sample_and_log_prob(key, (n,))
    return jax.vmap(log_p)(x) - log_q, x, log_q


@eqx.filter_jit
def _log_prob(q, x):
    return jax.vmap(q.log_prob)(x)


def evaluate(q, target, draws, key):
    """KL(q||p) = -mean log w, its MC standard error, PSIS k-hat, and max |log q(sample)
    - q.log_prob(x)| over the first 500 draws (a check of each flow's own density)."""
    lw, x, log_q = _log_weights(q, target.log_p, key, draws)
    lw = np.asarray(lw, np.float64)
    finite = np.isfinite(lw)
    kl = float(-np.mean(lw))
    se = float(np.std(lw, ddof=1) / math.sqrt(len(lw))) if finite.all() else float("nan")
    m = min(500, draws)
    lp = np.asarray(_log_prob(q, x[:m]), np.float64)
    consistency = float(np.nanmax(np.abs(lp - np.asarray(log_q[:m], np.float64))))
    return {"kl": kl, "se": se, "khat": float(psis_khat(jnp.asarray(lw))), "nonfinite": int((~finite).sum()),
            "logq_gap": consistency}


def _timed_call(fn, state):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(state)
    return time.perf_counter() - t0, time.process_time() - c0, out


def run_target(target, steps, repeats, draws, log):
    """Cold call (seed 0) per method, then ``repeats`` rounds (seeds 0..R-1), each round
    calling every method once in a shuffled order (spreads a shared machine's noise)."""
    methods = methods_for(target, steps)
    order = np.random.default_rng(0)
    eval_key = jax.random.key(12345)
    rows = {m.label: {"method": m, "wall": [], "cpu": [], "evals": []} for m in methods}
    for m in methods:
        state = m.prepare(0)
        t, _, q = _timed_call(m.fit, state)
        rows[m.label]["first"] = t
        rows[m.label]["num_params"] = m.num_params(state)
        if m.library == "vikl":
            m.config += f" -> {state[0]!r}"
        log(f"  {target.name}: {m.label}: first call {t:.2f} s")
    for seed in range(repeats):
        for i in order.permutation(len(methods)):
            m = methods[i]
            t, c, q = _timed_call(m.fit, m.prepare(seed))
            r = rows[m.label]
            r["wall"].append(t)
            r["cpu"].append(c)
            r["evals"].append(evaluate(q, target, draws, eval_key))
    return rows


def _max_param_diff(a, b):
    pa, pb = _partition(a)[0], _partition(b)[0]
    return float(max(jnp.max(jnp.abs(x - y)) for x, y in zip(jax.tree_util.tree_leaves(pa),
                                                                jax.tree_util.tree_leaves(pb))))


def summarize(target, rows, steps):
    out = []
    for label, r in rows.items():
        ev = r["evals"]
        kls = [e["kl"] for e in ev]
        med = statistics.median(r["wall"])
        out.append({
            "target": target.name, "d": target.dim, "method": label, "library": r["method"].library,
            "config": r["method"].config, "num_params": r["num_params"],
            "kl_mean": float(np.mean(kls)), "kl_sd_seeds": float(np.std(kls, ddof=1)) if len(kls) > 1 else 0.0,
            "kl_min": float(min(kls)), "kl_max": float(max(kls)), "kl_per_seed": kls,
            "se_max": float(max(e["se"] for e in ev)), "khat_per_seed": [e["khat"] for e in ev],
            "khat_median": float(statistics.median(e["khat"] for e in ev)),
            "logq_gap_max": float(max(e["logq_gap"] for e in ev)),
            "nonfinite": int(sum(e["nonfinite"] for e in ev)),
            "first_s": r["first"], "median_s": med, "compile_s": r["first"] - med,
            "us_per_step": 1e6 * med / steps, "best_us_per_step": 1e6 * min(r["wall"]) / steps,
            "cpu_us_per_step": 1e6 * statistics.median(r["cpu"]) / steps,
        })
    return out


def ratios(summary):
    by = {(s["target"], s["method"]): s for s in summary}
    out = []
    for s in summary:
        kind = PAIRS.get(s["method"])
        if kind is None:
            continue
        peer = next((p for (t, lab), p in by.items() if t == s["target"] and p["library"] == "flowjax"
                     and lab.startswith("flowjax ") and _kind_of(lab) == kind), None)
        if peer is None:
            continue
        out.append({
            "target": s["target"], "vikl": s["method"], "flowjax": peer["method"],
            "kl_vikl": s["kl_mean"], "kl_flowjax": peer["kl_mean"],
            "kl_diff": s["kl_mean"] - peer["kl_mean"],
            "kl_diff_se": math.sqrt((s["kl_sd_seeds"] ** 2 + peer["kl_sd_seeds"] ** 2) / max(len(s["kl_per_seed"]), 1)),
            "kl_ratio": s["kl_mean"] / peer["kl_mean"] if peer["kl_mean"] > 0 else float("nan"),
            "time_ratio": s["us_per_step"] / peer["us_per_step"],
            "cpu_ratio": s["cpu_us_per_step"] / peer["cpu_us_per_step"],
            "compile_ratio": s["compile_s"] / peer["compile_s"] if peer["compile_s"] > 0 else float("nan"),
        })
    return out


def _kind_of(label):
    if "RQS" in label:
        return "coupling_rqs"
    if "coupling_flow affine" in label:
        return "coupling_affine"
    if "masked_autoregressive" in label:
        return "maf"
    return ""


# ----------------------------------------------------------------------------- report
def render(summary, ratio_rows, loop_rows, header_lines):
    lines = list(header_lines)
    lines.append("\n### Fits (mean over seeds; KL in nats, absolute: every target is normalized)\n")
    head = ["target", "d", "method", "params", "KL(q‖p) mean ± sd over seeds", "min … max",
            "MC s.e. (max)", "k-hat median [per seed]", "first call s", "compile s", "µs/step",
            "CPU µs/step", "max |log q gap|"]
    body = []
    for s in summary:
        body.append([
            s["target"], s["d"], s["method"], s["num_params"],
            f"{fmt(s['kl_mean'], 3)} ± {fmt(s['kl_sd_seeds'], 2)}", f"{fmt(s['kl_min'], 3)} … {fmt(s['kl_max'], 3)}",
            fmt(s["se_max"], 2), f"{s['khat_median']:.2f} [{', '.join(f'{k:.2f}' for k in s['khat_per_seed'])}]",
            fmt(s["first_s"], 3), fmt(s["compile_s"], 3), fmt(s["us_per_step"], 3), fmt(s["cpu_us_per_step"], 3),
            fmt(s["logq_gap_max"], 2),
        ])
    lines.append(markdown_table(head, body))
    if ratio_rows:
        lines.append("\n### vikl / flowjax (paired flows, same budget)\n")
        head = ["target", "vikl", "flowjax", "KL vikl", "KL flowjax", "KL vikl − flowjax (± s.e. over seeds)",
                "KL ratio", "µs/step ratio", "CPU µs/step ratio", "compile ratio"]
        body = [[r["target"], r["vikl"], r["flowjax"], fmt(r["kl_vikl"], 3), fmt(r["kl_flowjax"], 3),
                 f"{r['kl_diff']:+.3g} ± {fmt(r['kl_diff_se'], 2)}", fmt(r["kl_ratio"], 3),
                 fmt(r["time_ratio"], 3), fmt(r["cpu_ratio"], 3), fmt(r["compile_ratio"], 3)] for r in ratio_rows]
        lines.append(markdown_table(head, body))
    if loop_rows:
        lines.append("\n### flowjax's fit_to_key_based_loss vs the jit(scan) loop used above "
                     "(same initial flow, same per-step keys, seed 0; median of 2 after a cold call)\n")
        head = ["target", "flow", "steps", "fit_to_key_based_loss µs/step", "jit(scan) µs/step", "loop / scan",
                "loop first call s", "scan first call s", "max |param diff|"]
        body = [[r["target"], r["flow"], r["steps"], fmt(r["loop_us_per_step"], 3), fmt(r["scan_us_per_step"], 3),
                 fmt(r["loop_us_per_step"] / r["scan_us_per_step"], 3), fmt(r["loop_first_s"], 3),
                 fmt(r["scan_first_s"], 3), f"{r['max_param_diff']:.2g}"] for r in loop_rows]
        lines.append(markdown_table(head, body))
    return "\n".join(lines) + "\n"


def _source_digest() -> str:
    """Short sha256 of vikl's flow sources (they change while vikl is developed)."""
    import hashlib

    root = os.path.dirname(vikl.__file__)
    out = []
    for rel in ("_distributions/flows.py", "bijectors/_flows.py", "families.py"):
        try:
            with open(os.path.join(root, rel), "rb") as f:
                out.append(f"vikl/{rel} {hashlib.sha256(f.read()).hexdigest()[:12]}")
        except OSError:
            pass
    return "; ".join(out)


def _versions():
    from importlib import metadata

    out = []
    for p in ("flowjax", "equinox", "paramax", "optax"):
        try:
            out.append(f"{p} {metadata.version(p)}")
        except metadata.PackageNotFoundError:
            out.append(f"{p} -")
    return ", ".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: banana only, 200 steps, 1 repeat, 2000 draws, no fit_to_key_based_loss timing")
    ap.add_argument("--steps", type=int, default=None, help=f"optimization steps per fit (default {STEPS})")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed fits per method, seeds 0..R-1 (default 5; 1 with --quick)")
    ap.add_argument("--draws", type=int, default=None, help=f"draws of the fitted q for KL and k-hat (default {DRAWS})")
    ap.add_argument("--targets", default=None, help="comma-separated subset of " + ",".join(TARGETS))
    ap.add_argument("--loop-steps", type=int, default=None,
                    help="steps for timing flowjax's own fit_to_key_based_loss against the jit(scan) loop "
                         "on the first target (default 1000; 0 skips, as --quick does)")
    ap.add_argument("--out", default="benchmarks/results/flows.md", help="markdown report path (JSON beside it)")
    args = ap.parse_args(argv)
    steps = args.steps or (200 if args.quick else STEPS)
    repeats = args.repeats or (1 if args.quick else 5)
    draws = args.draws or (2000 if args.quick else DRAWS)
    loop_steps = args.loop_steps if args.loop_steps is not None else (0 if args.quick else 1000)
    names = args.targets.split(",") if args.targets else (["banana"] if args.quick else list(TARGETS))
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        ap.error(f"--targets: unknown {unknown}; choose from {list(TARGETS)}")

    def log(msg):
        print(msg, flush=True)

    start_machine = machine_line()
    import vikl._distributions.flows  # noqa: F401  (the digest names the code this process runs)
    import vikl.bijectors._flows  # noqa: F401

    digest = _source_digest()
    log(start_machine)
    ring_err = check_ring_normalizer()
    log(f"ring normalizer: closed form log Z = {RING_LOG_Z:.12f}, rel. diff vs scipy quad {ring_err:.1e}")
    t0 = time.perf_counter()
    summary = []
    for name in names:
        rows = run_target(TARGETS[name], steps, repeats, draws, log)
        summary += summarize(TARGETS[name], rows, steps)
    loop_rows = documented_loop_check(TARGETS[names[0]], loop_steps, 2, log) if loop_steps else []
    ratio_rows = ratios(summary)
    total = time.perf_counter() - t0
    command = "python -m benchmarks.flows " + " ".join(argv if argv is not None else sys.argv[1:])
    header = [
        f"# Normalizing flows by reverse KL: vikl vs flowjax (FL1 of BENCH_PROBLEMS.md; {steps} steps, "
        f"{NUM_SAMPLES} draws/step, Adam {LR:g}, {repeats} seeds)",
        "",
        f"{start_machine}; {_versions()}",
        f"vikl flow sources (sha256 at start): {digest}",
        f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; total {total:.0f} s. "
        "The machine's 2 cores were shared with other jobs while this ran: timings are noisy "
        "(medians of the timed fits; CPU µs/step is the process CPU time, less sensitive to other processes).",
        "",
        f"command: `{command.strip()}`",
        "",
        "Targets (normalized; one jnp function used by both libraries): "
        + "; ".join(f"**{TARGETS[n].name}** (d={TARGETS[n].dim}): {TARGETS[n].definition}" for n in names)
        + f". Ring log Z = {RING_LOG_Z:.6f} (closed form; scipy quadrature agrees to {ring_err:.0e}).",
        "",
        f"Budget for every method: {steps} steps, {NUM_SAMPLES} reparameterized draws per step, plain ELBO gradient "
        f"(log q from the flow's sample_and_log_prob), optax.adam({LR:g}); {NUM_LAYERS} flow layers, "
        f"conditioner width {HIDDEN}, {NN_DEPTH} hidden layers (flowjax nn_depth={NN_DEPTH}), splines of "
        f"{KNOTS + 1} bins on [−{INTERVAL:g}, {INTERVAL:g}] (flowjax knots={KNOTS} counts the interior knots: "
        f"{KNOTS + 1} bins; vikl num_bins={KNOTS + 1}). KL(q‖p) = −mean(log p − log q) over {draws} draws of each fitted q "
        "(same key, same estimator for all); k-hat = vikl's PSIS k-hat of those log weights; "
        "'max |log q gap|' = max |log q from sample_and_log_prob − q.log_prob(x)| on 500 draws (a density self-check). "
        "µs/step = median wall time of the timed fits / steps (compile excluded: compile s = first call − median).",
        "",
        "Configurations: " + "; ".join(sorted({f"`{s['config']}`" for s in summary})),
    ]
    text = render(summary, ratio_rows, loop_rows, header)
    print(text)
    out_dir = os.path.dirname(args.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump({"machine": start_machine, "versions": _versions(), "command": command.strip(),
                   "steps": steps, "num_samples": NUM_SAMPLES, "lr": LR, "repeats": repeats, "draws": draws,
                   "ring_log_z": RING_LOG_Z, "vikl_flow_sources": digest, "fits": summary, "ratios": ratio_rows,
                   "documented_loop": loop_rows}, f, indent=1)
    log(f"wrote {args.out}")
    return summary


if __name__ == "__main__":
    main()
