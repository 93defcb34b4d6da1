"""When :func:`vikl.fit` without ``num_steps`` stops, and the checks of a fit's trustworthiness.

The stopping rule (:class:`Convergence`) is evaluated at fixed checkpoints,
every ``window`` steps, on quantities the compiled chunk accumulates (the sum
of the unconstrained parameters over each window) and on the loss history, so
where it stops does not depend on chunk timing or the progress bar.

Checkpoints and blocks: the rule is checked after window ``k`` when ``k >= 3``
and ``k`` is a multiple of the block size ``m`` (a power of 2 near ``k / 4``:
checks after windows 3-8, 10, 12, 14, 16, 20, ...); a block is ``m`` windows
aligned to the start, so the blocks, and the precision of their averages,
grow with the run. With ``θ̄_j`` the mean of the unconstrained parameters
over block ``j`` (the last three blocks ``j = 1, 2, 3``) and ``q̄_j`` its
distribution:

* ``"skl"`` rule (families with a closed-form KL between two members, e.g.
  every Gaussian family): the symmetrized KLs
  ``SKL(q̄_2, q̄_3)`` and ``SKL(q̄_1, q̄_3)``, ``SKL(a, b) = KL(a‖b) + KL(b‖a)``
  (nats), are both below ``skl_tol``, and the loss shows no significant
  decrease (the trend test below). Averages of a stationary run differ only
  by Monte-Carlo noise, so their SKL is a scale-free measure of how far the
  answer still moves (Welandawe et al. 2022 use this divergence between
  iterate averages to decide when a fixed-step-size run has converged); the
  second, two blocks apart, weighs a steady drift four times as much as the
  first and noise the same.
* ``"loss"`` rule (any other family): the trend test, and the upper bound
  ``decrease + t_crit * se`` of the loss decrease over the last block below
  ``loss_tol`` nats: with confidence, the loss falls by less than that per
  block. Its standard error is a Monte-Carlo standard error (MCSE) from batch
  means, as Dhaka et al. 2020 bound the MCSE of iterate averages.

Trend test: a least-squares line through 20 batch means of the last ``2 h``
losses (``h = m * window`` steps, two blocks) predicts the decrease over ``h``
steps, with a standard error from the line's residuals; the loss shows no
significant decrease when ``decrease <= t_crit * se + 1e-4`` nats, and no
significant rise when ``-decrease <= 2 t_crit * se + 1e-4`` (a fit drifting
off, or thrown out of its basin by a spike and not back yet, had passed as
"no significant decrease"; the rise gets twice the bound because the
standard error still understates autocorrelated noise a little, and a rise
at ``t_crit`` held off stops of stationary noise). Successive
batch means of an optimizer's loss are correlated (the iterates wander
slowly), which the residuals' spread alone understates: the standard error is
inflated by ``sqrt((1 + ρ) / (1 - ρ))`` (the variance of a mean or a slope of
an AR(1) series with lag-1 autocorrelation ``ρ``), ``ρ`` the residuals' lag-1
autocorrelation, corrected for its small-sample bias (``+ (2 + 4 ρ) / n``
for ``n`` residuals of a fitted line) and clipped to ``[0, 0.95]``. Measured
on stationary AR(1) noise (h = 100, 2000 runs): ``decrease > 2 se`` in 6.2%
of runs at lag-1 0.95 per step (20% without the factor; 2.3% is nominal),
2.2% on independent noise (3.4%). On AR(1) noise (lag-1 0.95, sd 0.2 nats)
around a loss falling 0.1 nats per 100 steps for 20,000 steps, the loss rule
stopped in 16 of 100 runs, 44 without the factor (no estimate from 200 steps
sees correlations over 100 steps: the bound stays optimistic there); on
independent noise (sd 1) it stops a little later (median window 12 against
10, 40 runs). The MCSE of the
mean loss of the last ``h`` steps is a batch-means standard error (10
batches), inflated the same way (bias ``+ (1 + 4 ρ) / n`` about a mean).

Loss resolution (both rules): the standard error of the trend test's
decrease must be at most ``loss_se_tol`` (2 nats). The trend test passes any
decrease below about ``t_crit`` standard errors, so with a larger one "no
significant decrease" says nothing: a loss whose Monte-Carlo noise is that
large cannot show that it has stopped falling, however little the
parameters move. This is what a stalled fit looks like: on the posteriordb
mcycle GP (d = 66, doubly-exponential tails in the noise parameters) a
full-rank q started at 0.1 I had losses of 1e7 to 1e23 nats per step; one
spike's gradient fills Adam's second moment, the steps shrink to nothing,
the block averages' SKL was 1e-6 nats, the decrease 1.4e15 ± 9.4e14 passed
as "no trend", and the skl rule said converged at step 700 with an ELBO of
-2e20 (the optimum is about -640). Where the rule holds on well-behaved
targets this standard error is far smaller (measured at the stop: at most
0.15 nats on d = 3 and d = 20 Gaussian targets, full-rank and mean-field;
0.67 on 8 small posteriordb posteriors, but 1.5 on one of 20 seeds of the
full-rank kilpisjarvi fit, whose losses have spikes of +15 nats: a bound of
1 nat would have moved its stop from step 300 to 500, 2 moves none).

The returned ``q`` is the average of the last two blocks of the last check
(``2 h`` steps), also for a run that never converged (tail averaging over a
quarter to half of the run: far less noisy than the last windows; measured
on a d = 50 full-rank Gaussian with skl_tol=0.01, which never held: KL 0.007
nats to the target after 20,000 steps, against 0.19 for the last two
windows after 100,000).

References:
  Welandawe, Andersen, Vehtari, Huggins (2022). Robust, automated, and
  accurate black-box variational inference. arXiv:2203.15945.
  Dhaka, Catalina, Andersen, Magnusson, Huggins, Vehtari (2020). Robust,
  accurate stochastic optimization for variational inference. NeurIPS.
  Marriott, Pope (1954). Bias in the estimation of autocorrelations.
  Biometrika 41(3/4), 390-402.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from vikl import _loop
from vikl._base import Distribution, Module
from vikl._constraints import _LowerCholesky, _Positive
from vikl._kl import kl_divergence

__all__ = ["Convergence", "DEFAULT_MAX_STEPS", "KHAT_THRESHOLD", "COLLAPSE_RATIO"]

DEFAULT_MAX_STEPS = 100_000
KHAT_THRESHOLD = 0.7
COLLAPSE_RATIO = 1e-6  # a positive parameter below this fraction of its initial value has collapsed
_NUM_BATCHES = 10
_TREND_SLACK = 1e-4  # nats: a smaller decrease is no trend whatever its standard error


@dataclasses.dataclass(frozen=True)
class Convergence:
    """The stopping rule of :func:`vikl.fit` without ``num_steps`` (see the module docstring).

    Args:
      window: steps per window ``W`` (an int >= 10), the unit of checkpoints
        and blocks (see the module docstring): the first check is after
        ``3 W`` steps, the shortest average ``2 W`` steps.
      skl_tol: bound (nats) on the symmetrized KLs between the parameter
        averages of the last three blocks (``"skl"`` rule). Measured with
        Adam(1e-2) on Gaussian targets (d = 1 to 50, full-rank and
        mean-field, 3 seeds each): the returned ``q`` was within 0.01 nats
        (KL) of the family's optimum at the default 0.1, within 0.004 at
        0.03 (2-3x the steps for d >= 20), and 0.01 did not converge within
        100,000 steps at d = 50 (the noise of the averages falls too slowly).
      loss_tol: bound (nats) on the upper confidence bound of the loss
        decrease over the last block (``"loss"`` rule).
      t_crit: the trend test's critical value (2: about a 2.3% one-sided
        false-alarm rate per check for normal batch means); a rise must
        exceed ``2 t_crit`` standard errors to count.
      rule: ``"auto"`` (``"skl"`` when ``q``'s family has a closed-form KL
        between its members, else ``"loss"``), ``"skl"`` or ``"loss"``.
      loss_se_tol: bound (nats) on the standard error of the loss decrease
        over the last block (both rules): a loss noisier than this cannot
        show that it has stopped falling, so the rule does not hold (a
        stalled fit with losses of 1e20 nats moves its parameters too
        little for the skl rule to see).

    Raises:
      ValueError: an argument out of range (the message names it).
    """

    window: int = 100
    skl_tol: float = 0.1
    loss_tol: float = 0.05
    t_crit: float = 2.0
    rule: str = "auto"
    loss_se_tol: float = 2.0

    def __post_init__(self):
        from vikl._validate import check_int

        check_int("window", self.window, 10, where="Convergence")
        for name in ("skl_tol", "loss_tol", "t_crit", "loss_se_tol"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf:
                raise ValueError(f"Convergence: {name} must be a finite number > 0; got {v!r}")
        if self.rule not in ("auto", "skl", "loss"):
            raise ValueError(f"Convergence: rule must be 'auto', 'skl' or 'loss'; got {self.rule!r}")


def resolve(convergence) -> Convergence:
    """``None`` -> the defaults; a dict -> ``Convergence(**dict)``; a Convergence as is."""
    if convergence is None:
        return Convergence()
    if isinstance(convergence, Convergence):
        return convergence
    if isinstance(convergence, dict):
        return Convergence(**convergence)
    raise TypeError(
        "fit: convergence must be None, a vikl.Convergence or a dict of its fields "
        f"(e.g. {{'window': 200}}); got {type(convergence).__name__}"
    )


# ----------------------------------------------------------------------------- statistics
def block_size(k) -> int:
    """Windows per compared block at the checkpoint after window ``k``: a power of 2 near ``k / 4``."""
    return 1 << max(0, (max(1, k // 4)).bit_length() - 1)


def is_checkpoint(k) -> bool:
    """Whether the rule is checked after window ``k``: ``k >= 3``, a multiple of the block size."""
    return k >= 3 and k % block_size(k) == 0


def next_checkpoint(k) -> int:
    """The first window after window ``k`` at which the rule is checked (:func:`is_checkpoint`)."""
    k += 1
    while not is_checkpoint(k):
        k += 1
    return k


def _ar1_inflation(resid, fitted) -> float:
    """``sqrt((1 + ρ) / (1 - ρ))`` for the lag-1 autocorrelation ``ρ`` of residuals ``resid``.

    ``ρ``: the sample lag-1 autocorrelation ``r`` of ``n`` residuals after fitting
    ``fitted`` coefficients (1: a mean, 2: a line), plus ``(fitted + 4 r) / n``
    (its approximate bias, Marriott and Pope 1954 for a mean; for a line the
    constant term measured: mean ``r`` -0.099 for 20 independent residuals),
    clipped to ``[0, 0.95]``: the standard error of a mean or slope of the
    series is this factor times the one that treats the residuals as independent.
    """
    resid = np.asarray(resid, np.float64)
    ss = float(np.sum(resid**2))
    if resid.size < 3 or not ss > 0:
        return 1.0
    r = float(np.sum(resid[1:] * resid[:-1])) / ss
    rho = min(max(r + (fitted + 4 * r) / resid.size, 0.0), 0.95)
    return math.sqrt((1 + rho) / (1 - rho))


def batch_means(x, num_batches=_NUM_BATCHES):
    """``(mean, se)`` of ``x``: its mean and the batch-means standard error of it.

    The standard error is inflated for the lag-1 autocorrelation of the batch
    means (:func:`_ar1_inflation`).
    """
    x = np.asarray(x, np.float64)
    b = max(2, min(num_batches, x.size // 2))
    means = x[: x.size // b * b].reshape(b, -1).mean(axis=1)
    se = float(np.std(means, ddof=1) / math.sqrt(b)) * _ar1_inflation(means - means.mean(), 1)
    return float(np.mean(x)), se


def trend(losses, h):
    """``(decrease, se_decrease, se_recent)`` over the last ``2 h`` losses.

    ``decrease``: the drop of the loss over ``h`` steps predicted by a least-squares
    line through ``2 * num_batches`` batch means of the last ``2 h`` losses (a
    standard error from its residuals, which a trend does not inflate, times
    :func:`_ar1_inflation` of them: successive batch means of an optimizer's
    loss are correlated); ``se_recent``: the batch-means standard error of the
    mean of the last ``h``.
    """
    x = np.asarray(losses[len(losses) - 2 * h:], np.float64)
    b = 2 * _NUM_BATCHES if x.size >= 4 * _NUM_BATCHES else max(3, x.size // 2)
    means = x[: x.size // b * b].reshape(b, -1).mean(axis=1)
    t = np.arange(b, dtype=np.float64) - (b - 1) / 2
    slope = float(np.sum(t * means) / np.sum(t * t))
    resid = means - means.mean() - slope * t
    se_slope = math.sqrt(float(np.sum(resid**2)) / (b - 2) / float(np.sum(t * t)))
    se_slope *= _ar1_inflation(resid, 2)
    per_h = b / 2  # batches per h steps
    _, se_recent = batch_means(x[x.size // 2:])
    return -slope * per_h, se_slope * per_h, se_recent


@functools.partial(jax.jit, static_argnums=0)
def _skl(q_static, q_dyn, params_a, params_b):
    template = q_static.rebuild(q_dyn)
    a, b = _loop.current_q(template, params_a), _loop.current_q(template, params_b)
    with _loop.standard_promotion():
        return jnp.sum(kl_divergence(a, b)) + jnp.sum(kl_divergence(b, a))


def has_self_kl(q) -> bool:
    """Whether ``kl_divergence(q, q)`` has a closed form (traced, nothing computed).

    Only ``NotImplementedError``, :func:`vikl.kl_divergence`'s answer for a pair
    with no closed form (no registered pair, or two ``Transformed`` whose
    bijectors with traced parameters cannot be compared), means "no"; any other
    error is a bug in a registered KL and propagates.
    """
    try:
        jax.eval_shape(kl_divergence, q, q)
    except NotImplementedError:
        return False
    return True


def _no_kl_note(family) -> str:
    """The end of the loss rule's text where the skl rule could not be used for ``family``."""
    return (f"; the loss rule, as q's family ({family}) has no closed-form KL between its "
            "members (the skl rule needs one)")


class _Level:
    """Sums of aligned blocks of ``2**level`` windows: the one being filled and the last three done."""

    def __init__(self, level):
        self.size, self.count, self.partial, self.blocks = 1 << level, 0, None, []

    def push(self, window_sum):
        self.partial = window_sum if self.partial is None else jax.tree_util.tree_map(
            np.add, self.partial, window_sum)
        self.count += 1
        if self.count == self.size:
            self.blocks = (self.blocks + [self.partial])[-3:]
            self.partial, self.count = None, 0


class Monitor:
    """Host side of the rule: window parameter sums in, a decision (and its statistics) out.

    At a checkpoint after window ``k`` with block size ``m``
    (:func:`block_size`), the rule compares the parameter averages of the
    last two blocks of ``m`` windows and tests the loss trend over their
    ``2 m`` windows; as the run grows, so do the blocks, and the noise of their
    averages falls, so a stationary run eventually passes. Block sums are kept
    in float64 on the host per power of 2 (three parameter-sized sums each),
    never per window.
    """

    def __init__(self, conv: Convergence, q_static, q_dyn, rule: str, params, max_windows: int):
        self.conv, self.q_static, self.q_dyn, self.rule = conv, q_static, q_dyn, rule
        self.dtypes = jax.tree_util.tree_map(jnp.result_type, params)
        self.levels = [_Level(i) for i in range(block_size(max(2, max_windows)).bit_length())]
        self.windows = 0
        self.last = "no check yet (the first is after three windows)"
        self.block = 1
        # Why the loss rule runs where the skl rule was asked for or "auto" could not pick it.
        self.note = ""
        if rule == "loss" and conv.rule == "auto" and q_static is not None:
            self.note = _no_kl_note(type(q_static.rebuild(q_dyn)).__name__)

    def push(self, window_sum):
        """Adds the parameter sum of the next window (a pytree of arrays)."""
        self.windows += 1
        window_sum = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), window_sum)
        for level in self.levels:
            level.push(window_sum)

    def _mean(self, total, steps):
        return jax.tree_util.tree_map(lambda s, d: jnp.asarray(s / steps, d), total, self.dtypes)

    def average(self, m=None):
        """``(params, steps)``: the average of the last two blocks of ``m`` windows (default: the last check's)."""
        m = self.block if m is None else m
        blocks = self.levels[m.bit_length() - 1].blocks[-2:]
        steps = len(blocks) * m * self.conv.window
        total = jax.tree_util.tree_map(lambda *xs: sum(xs), *blocks)
        return self._mean(total, steps), steps

    def check(self, losses) -> bool:
        """Whether the rule holds after the windows pushed so far (``losses``: this run's)."""
        c, k = self.conv, self.windows
        if not is_checkpoint(k):
            return False
        m = self.block = block_size(k)
        h = m * c.window
        dec, se_dec, se_recent = trend(losses, h)
        # A loss too noisy to resolve to loss_se_tol cannot show that it stopped falling (a
        # stall: steps too small to move the parameters, losses of 1e20). False for a nan se.
        resolved = se_dec <= c.loss_se_tol
        # A loss that rises by more than 2 t_crit se (a fit drifting off, or thrown out of its
        # basin and not back yet) has not converged either. Twice the bound of a fall: the
        # batch means of an optimizer's loss are autocorrelated, and a rise at t_crit se held
        # off the stop of stationary noise (AR(1), lag-1 0.95) for 20,000 steps.
        limit = c.t_crit * se_dec + _TREND_SLACK
        rises = dec < -(2 * c.t_crit * se_dec + _TREND_SLACK)
        trend_ok = dec <= limit and not rises and resolved
        t = (f"loss decrease over the last {h} steps {dec:.3g} ± {se_dec:.2g} "
             f"{'<=' if dec <= limit else '>'} {c.t_crit:g} se")
        if rises:
            t += f", but the loss rises significantly (by more than {2 * c.t_crit:g} se)"
        if not resolved:
            t += (f", but its standard error {se_dec:.2g} is not <= loss_se_tol={c.loss_se_tol:g} "
                  "nats: the loss is too noisy to show that it has stopped falling")
        if self.rule == "skl":
            a, b, last = (self._mean(x, h) for x in self.levels[m.bit_length() - 1].blocks)
            try:
                skl = [float(_skl(self.q_static, self.q_dyn, x, last)) for x in (b, a)]
            except NotImplementedError:  # rule="skl" asked for a family with no closed-form KL
                self.rule = "loss"
                self.note = _no_kl_note(type(self.q_static.rebuild(self.q_dyn)).__name__)
                return self.check(losses)
            ok = max(skl) < c.skl_tol
            self.last = (f"symmetrized KL from the parameter averages of the two {h}-step blocks "
                         f"before to the last {skl[0]:.3g}, {skl[1]:.3g} {'<' if ok else '>='} "
                         f"{c.skl_tol:g} nats; {t}")
            return ok and trend_ok
        bound = dec + c.t_crit * se_dec
        ok = bound < c.loss_tol
        self.last = (f"{t}; its upper bound {bound:.3g} {'<' if ok else '>='} {c.loss_tol:g} "
                     f"nats (MCSE of the mean loss of the last {h} steps {se_recent:.2g}){self.note}")
        return ok and trend_ok


# ----------------------------------------------------------------------------- trust checks
def _positive_parts(obj, path=""):
    """``(path, values)`` of every positive parameter (Cholesky diagonals) in a distribution tree."""
    if isinstance(obj, Module):
        cls = type(obj)
        constraints = getattr(cls, "_param_constraints", {})
        for name in cls._child_fields:
            value = getattr(obj, name)
            c = constraints.get(name)
            if isinstance(c, _Positive) and value is not None:
                yield f"{path}{name}", value
            elif isinstance(c, _LowerCholesky) and value is not None:
                yield f"diag({path}{name})", jnp.diagonal(value, axis1=-2, axis2=-1)
            elif isinstance(value, (Module, list, tuple)):
                yield from _positive_parts(value, f"{path}{name}.")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _positive_parts(v, f"{path[:-1]}[{i}].")


def collapsed_scales(q0, q) -> list:
    """Messages for positive parameters of ``q`` below ``COLLAPSE_RATIO`` of ``q0``'s or near underflow."""
    if not (isinstance(q0, Distribution) and isinstance(q, Distribution)):
        return []
    out = []
    for (path, v0), (_, v) in zip(_positive_parts(q0), _positive_parts(q)):
        tiny = float(np.finfo(jnp.result_type(v)).tiny) if jnp.issubdtype(
            jnp.result_type(v), jnp.floating) else 0.0
        v0, v = np.asarray(v0, np.float64), np.asarray(v, np.float64)
        if v.shape != v0.shape:
            continue
        bad = (v < COLLAPSE_RATIO * v0) | (v < 1e6 * tiny)
        if np.any(bad):
            i = int(np.argmin(np.where(bad, v / np.maximum(v0, tiny), np.inf)))
            out.append(
                f"the fitted scale {path} collapsed: its smallest value is {v.ravel()[i]:.3g}, "
                f"{v.ravel()[i] / max(v0.ravel()[i], tiny):.2g} times its initial value "
                f"({int(np.sum(bad))} of {v.size} entries below {COLLAPSE_RATIO:g} times their "
                "initial value or near float underflow). q has put all its mass on a point in "
                "those directions; the fit there is not meaningful. Try a smaller learning rate, "
                "more samples per step, or a family that can represent the target's shape."
            )
    return out


def khat_problem(khat) -> Optional[str]:
    """The warning for a PSIS k-hat above ``KHAT_THRESHOLD`` (``None`` otherwise)."""
    k = np.max(np.asarray(khat, np.float64))
    if not k > KHAT_THRESHOLD:
        return None
    return (
        f"k-hat is {k:.2f} > {KHAT_THRESHOLD}: the importance weights p/q have effectively "
        "infinite variance, so q misses mass of the target (too narrow or wrong shape) and "
        "expectations under q can be far from the target's. Try more steps, a richer family "
        "(vikl.families.full_rank, a flow such as vikl.families.spline_flow) or a mixture."
    )


def not_converged_problem(max_steps, steps, last) -> str:
    """The warning for a rule that never held (``last``: the result's ``convergence`` text)."""
    return (
        f"the stopping rule did not hold within max_steps={max_steps} ({steps} steps run, in "
        f"whole windows; {last}). "
        "The returned q is the average of the last iterates and may still be moving. Try a "
        "larger max_steps, a smaller learning rate (less noise), more samples per step, or "
        "a wider window (convergence=vikl.Convergence(window=...))."
    )
