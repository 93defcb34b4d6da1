"""Importance-sampling diagnostics of a fitted ``q``: PSIS k-hat and the ESS.

With ``x_s ~ q`` and log importance weights ``log w_s = log p(x_s) - log q(x_s)``
(``p`` may be unnormalized: both diagnostics are invariant to scaling ``w``):

* ``psis_khat`` -- the shape ``k`` of a generalized Pareto distribution fitted
  to the largest weights (Yao et al. 2018; Vehtari et al. 2024). ``k < 0.5``:
  ``q`` is a good proposal for ``p``, importance sampling is reliable;
  ``0.5 <= k < 0.7``: usable with care; ``k >= 0.7``: the weights' variance is
  effectively infinite and ``q`` misses mass of ``p``. It reflects mostly
  the tails of ``p`` relative to ``q`` (a reverse-KL fit that is too narrow
  gets a large ``k``).
* ``importance_ess`` -- Kish's effective sample size
  ``(sum_s w_s)^2 / sum_s w_s^2``, between 1 and ``S`` (~1 when one weight
  dominates; 0 when every weight is 0).

Both run in NumPy float64 on the host (a few thousand draws, once per fit).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["psis_khat", "importance_ess", "gpd_fit", "ISDiagnostics"]


def _logsumexp(a):
    m = np.max(a)
    if not np.isfinite(m):
        return m
    return m + math.log(np.sum(np.exp(a - m)))


def gpd_fit(x):
    """Fits a generalized Pareto distribution (location 0) to exceedances ``x >= 0``.

    Zhang & Stephens (2009) empirical-Bayes estimator: a posterior-weighted
    average over a grid of ``theta = -k / sigma``, each scored by its profile
    log-likelihood ``n (log(-theta / k(theta)) - k(theta) - 1)`` with
    ``k(theta) = mean log(1 - theta x)``; then ``k`` is shrunk towards 0.5 by a
    weakly informative prior worth 10 observations (Vehtari et al. 2024,
    appendix G). The same estimator as NumPyro's ``psis_diagnostic`` and the
    R package loo; NumPyro also drops grid points of posterior weight below
    ``10 eps``, which changes ``k`` by less than 1e-12.

    ``k`` does not depend on the scale of ``x`` (``sigma`` scales with it).

    Args:
      x: 1-D array of at least 2 finite exceedances, ``>= 0``, whose lower
        quartile (the ``round(n / 4)``-th smallest) and maximum are ``> 0``.

    Returns:
      ``(k, sigma)``: shape (``k > 0`` is a heavy tail with ``1/k`` finite
      moments) and scale.

    Raises:
      ValueError: ``x`` is not such an array (the fit would be 0/0).
    """
    x = np.sort(np.asarray(x, dtype=np.float64).ravel())
    n = x.size
    if n < 2 or not np.all(np.isfinite(x)) or x[0] < 0:
        raise ValueError(f"gpd_fit: x must hold >= 2 finite values >= 0; got {n} values, min "
                         f"{x[0] if n else None}, max {x[-1] if n else None}")
    quartile = x[int(n / 4 + 0.5) - 1]
    if not quartile > 0:
        raise ValueError(f"gpd_fit: the lower quartile of x must be > 0 (got {quartile}); the tail is "
                         "degenerate: too many zero (tied or underflowed) exceedances")
    m = 30 + int(math.sqrt(n))
    j = np.arange(1, m + 1, dtype=np.float64)
    theta = 1.0 / x[-1] + (1.0 - np.sqrt(m / (j - 0.5))) / (3.0 * quartile)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        k_theta = np.mean(np.log1p(-theta[:, None] * x[None, :]), axis=1)
        profile = n * (np.log(-theta / k_theta) - k_theta - 1.0)
    profile = np.where(np.isfinite(profile), profile, -np.inf)
    weights = np.exp(profile - _logsumexp(profile))
    theta_hat = float(np.sum(theta * weights))
    k = float(np.mean(np.log1p(-theta_hat * x)))
    sigma = -k / theta_hat
    k = (n * k + 10 * 0.5) / (n + 10)
    return k, sigma


def _tail_exceedances(lw, m):
    """Exceedances of the ``m`` largest of sorted ``lw`` over the next, divided by the largest.

    In log space: ``exp(a) - exp(c) = exp(c) expm1(a - c)`` and the common
    factor cancels in the ratio, so neither the weights nor their differences
    are formed; a ratio below ~1e-308 underflows to 0.
    """
    d = lw[-m:] - lw[-m - 1]
    d = d[d > 0]  # exact ties with the cutoff carry no tail information
    if d.size == 0:
        return d
    log_x = d + np.log(-np.expm1(-d))  # log expm1(d), stable for small and large d
    return np.exp(log_x - log_x[-1])


def psis_khat(log_weights) -> float:
    """Pareto-smoothed importance sampling diagnostic ``k-hat`` of log weights.

    The tail is the ``M = ceil(min(S / 5, 3 sqrt(S)))`` largest of ``S`` weights;
    a generalized Pareto is fitted (:func:`gpd_fit`) to their excess over the
    next largest weight, computed from the log weights relative to each other
    so weights thousands of nats apart neither overflow nor vanish early.
    Weights tied with that cutoff are left out, as in NumPyro and loo.

    Degenerate weights get a definite answer, never one that passes a check
    ``khat < 0.7`` by accident:

    * ``+inf`` (flagged: importance sampling from ``q`` is unreliable) when
      fewer than 5 tail weights exceed the cutoff, when the tail spans so many
      orders of magnitude that its lower quartile underflows next to its
      maximum (weights ~700 nats apart: one draw holds all the weight), or
      when a weight is ``+inf``, or when every weight is 0 (no draw of ``q``
      lies in ``p``'s support).
    * ``-inf`` only when all ``S`` log weights are exactly equal: ``q ∝ p`` on
      every draw and importance sampling is exact. (NumPyro and loo answer
      ``+inf`` with a warning here: they cannot fit a Pareto to equal values.)
    * ``nan`` when there is nothing to judge: fewer than 25 draws or a NaN
      weight.

    ``-inf`` weights (``p = 0`` at a draw) are weights of 0 and take part.

    Args:
      log_weights: 1-D array of ``log p(x_s) - log q(x_s)``, ``x_s ~ q``
        (``p`` may be unnormalized).

    Returns:
      ``k-hat`` as a float.

    References:
      Yao, Vehtari, Simpson, Gelman (2018). Yes, but did it work?: Evaluating
      variational inference. ICML. Vehtari, Simpson, Gelman, Yao, Gabry (2024).
      Pareto smoothed importance sampling. JMLR.
    """
    lw = np.sort(np.asarray(log_weights, dtype=np.float64).ravel())
    s = lw.size
    if s < 25 or np.isnan(lw).any():
        return float("nan")
    if lw[-1] == np.inf or lw[-1] == -np.inf:
        return float("inf")  # an infinite weight, or no draw in p's support at all
    if lw[0] == lw[-1]:
        return float("-inf")
    m = int(math.ceil(min(0.2 * s, 3.0 * math.sqrt(s))))
    x = _tail_exceedances(lw, m)
    if x.size < 5 or not x[int(x.size / 4 + 0.5) - 1] > 0:
        return float("inf")
    return float(gpd_fit(x)[0])


def importance_ess(log_weights) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` from log weights.

    Computed in log space: ``exp(2 logsumexp(lw) - logsumexp(2 lw))``. Equals
    ``S`` for equal weights and ~1 when one weight dominates (weights many
    nats apart), so ``ess / S`` is ~``1 / S`` then. ``+inf`` weights dominate
    all finite ones: the ESS is their count. ``nan`` with a NaN weight or no
    weights; 0 when all weights are 0 (``-inf``).
    """
    lw = np.asarray(log_weights, dtype=np.float64).ravel()
    if lw.size == 0 or np.any(np.isnan(lw)):
        return float("nan")
    if np.any(lw == np.inf):
        return float(np.count_nonzero(lw == np.inf))
    if np.all(lw == -np.inf):
        return 0.0
    return float(math.exp(2 * _logsumexp(lw) - _logsumexp(2 * lw)))


@dataclasses.dataclass(frozen=True)
class ISDiagnostics:
    """Importance-sampling diagnostics of a fitted ``q`` against its target.

    Attributes:
      khat: PSIS k-hat (< 0.5 good, < 0.7 usable, >= 0.7 unreliable); ``+inf``
        for degenerate weights (one draw holds the weight: a wrecked fit),
        ``-inf`` only when all weights are equal (``q ∝ p``), ``nan`` when
        not computed (target without ``log_prob``, or diagnostics off); see
        :func:`psis_khat`.
      ess: Kish effective sample size of ``num_samples`` importance weights.
      num_samples: draws from ``q`` used.
    """

    khat: float
    ess: float
    num_samples: int

    @property
    def ess_fraction(self) -> float:
        """``ess / num_samples``, in [0, 1]."""
        return self.ess / self.num_samples if self.num_samples else float("nan")

    @classmethod
    def from_log_weights(cls, log_weights) -> "ISDiagnostics":
        lw = np.asarray(log_weights)
        return cls(psis_khat(lw), importance_ess(lw), int(lw.size))

    @classmethod
    def unavailable(cls) -> "ISDiagnostics":
        return cls(float("nan"), float("nan"), 0)

    @classmethod
    def stack(cls, items) -> "ISDiagnostics":
        """One object holding arrays (a batched fit's members along axis 0)."""
        items = list(items)
        return cls(
            np.array([d.khat for d in items]),
            np.array([d.ess for d in items]),
            items[0].num_samples if items else 0,
        )

    def __getitem__(self, i) -> "ISDiagnostics":
        if np.ndim(self.khat) == 0:
            return self  # an unavailable (nan) diagnostic applies to every member
        return ISDiagnostics(float(self.khat[i]), float(self.ess[i]), self.num_samples)
