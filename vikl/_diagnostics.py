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
  ``(sum_s w_s)^2 / sum_s w_s^2``, between 1 and ``S``.

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
    """Fits a generalized Pareto distribution (location 0) to exceedances ``x > 0``.

    Zhang & Stephens (2009) empirical-Bayes estimator: a posterior-weighted
    average over a grid of ``theta = -k / sigma``, each scored by its profile
    log-likelihood ``n (log(-theta / k(theta)) - k(theta) - 1)`` with
    ``k(theta) = mean log(1 - theta x)``; then ``k`` is shrunk towards 0.5 by a
    weakly informative prior worth 10 observations, as in PSIS.

    Args:
      x: 1-D array of positive exceedances.

    Returns:
      ``(k, sigma)``: shape (``k > 0`` is a heavy tail with ``1/k`` finite
      moments) and scale.
    """
    x = np.sort(np.asarray(x, dtype=np.float64))
    n = x.size
    m = 30 + int(math.sqrt(n))
    j = np.arange(1, m + 1, dtype=np.float64)
    quartile = x[int(n / 4 + 0.5) - 1]
    theta = 1.0 / x[-1] + (1.0 - np.sqrt(m / (j - 0.5))) / (3.0 * quartile)
    k_theta = np.mean(np.log1p(-theta[:, None] * x[None, :]), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        profile = n * (np.log(-theta / k_theta) - k_theta - 1.0)
    profile = np.where(np.isfinite(profile), profile, -np.inf)
    weights = np.exp(profile - _logsumexp(profile))
    theta_hat = float(np.sum(theta * weights))
    k = float(np.mean(np.log1p(-theta_hat * x)))
    sigma = -k / theta_hat
    k = (n * k + 10 * 0.5) / (n + 10)
    return k, sigma


def psis_khat(log_weights) -> float:
    """Pareto-smoothed importance sampling diagnostic ``k-hat`` of log weights.

    The tail is the ``M = ceil(min(S / 5, 3 sqrt(S)))`` largest of ``S`` weights;
    a generalized Pareto is fitted to their excess over the next largest
    weight (:func:`gpd_fit`).

    Args:
      log_weights: 1-D array of ``log p(x_s) - log q(x_s)``, ``x_s ~ q``.

    Returns:
      ``k-hat`` as a float; ``nan`` with fewer than 25 finite draws or any
      NaN/``+inf`` weight; ``-inf`` when the tail weights are all equal
      (``q`` proportional to ``p``).

    References:
      Yao, Vehtari, Simpson, Gelman (2018). Yes, but did it work?: Evaluating
      variational inference. ICML. Vehtari, Simpson, Gelman, Yao, Gabry (2024).
      Pareto smoothed importance sampling. JMLR.
    """
    lw = np.asarray(log_weights, dtype=np.float64).ravel()
    if np.any(np.isnan(lw)) or np.any(lw == np.inf):
        return float("nan")
    lw = np.sort(lw[np.isfinite(lw)])
    s = lw.size
    m = int(math.ceil(min(0.2 * s, 3.0 * math.sqrt(s))))
    if s < 25 or m < 5:
        return float("nan")
    top = lw[-1]
    tail = np.exp(lw[-m:] - top)
    cutoff = math.exp(lw[-m - 1] - top)
    exceed = tail - cutoff
    exceed = exceed[exceed > 0]  # ties with the cutoff carry no tail information
    if exceed.size < 5:
        return float("-inf")
    return float(gpd_fit(exceed)[0])


def importance_ess(log_weights) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` from log weights.

    Computed in log space: ``exp(2 logsumexp(lw) - logsumexp(2 lw))``. Equals
    ``S`` for equal weights and 1 when one weight dominates. ``nan`` with a
    NaN or ``+inf`` weight; 0 when all weights are 0.
    """
    lw = np.asarray(log_weights, dtype=np.float64).ravel()
    if lw.size == 0 or np.any(np.isnan(lw)) or np.any(lw == np.inf):
        return float("nan")
    if np.all(lw == -np.inf):
        return 0.0
    return float(math.exp(2 * _logsumexp(lw) - _logsumexp(2 * lw)))


@dataclasses.dataclass(frozen=True)
class ISDiagnostics:
    """Importance-sampling diagnostics of a fitted ``q`` against its target.

    Attributes:
      khat: PSIS k-hat (< 0.5 good, < 0.7 usable, >= 0.7 unreliable); ``nan``
        when not computed (target without ``log_prob``, or diagnostics off).
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
