"""Issue 19 residue, Gaussian KLs: extreme scales and locations that overflowed or gave NaN.

Before the fix, the adversarial sweep found (float32 unless said):

* ``LowRankMultivariateNormal`` against ``MultivariateNormalDiag`` with ``scale_diag = 1e-30``:
  NaN for 2.718e30 (the Diag variance 1e-60 underflowed to 0), and +inf for 309 when p's
  covariance was 1e-30 against q's 1e60;
* low-rank pairs with ``mp - mq = 3e29`` over covariances of 1e-30: NaN for a KL of 8.6e88
  (+inf is due in float32; in float64 8.6e88 itself), in both precisions (float64 at 1e-300);
* ``Normal`` against a one-dimensional ``MultivariateNormal``: +inf for 3.125e38, just
  below the float32 maximum (``z^2`` overflowed before it was halved).

References: the textbook formula in mpmath at 60 digits (3x3 determinant and inverse by
cofactors, independent of vikl's factorizations), at the float-rounded inputs.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest

import vikl

LOC = np.array([0.3, -0.05, -0.4])
W = np.array([[0.8164, -1.0223], [0.1672, -0.2271], [-0.1811, -0.0862]])
D = np.array([0.7, 0.95, 1.2])
L = np.array([[0.9, 0.0, 0.0], [-0.2672, 1.2, 0.0], [0.018, 0.4021, 1.05]])
SD = np.array([0.8, 1.05, 1.3])
RTOL = {np.dtype("float32"): 1e-4, np.dtype("float64"): 1e-9}


def _make(kind, c, s, dtype):
    """A 3-d Gaussian of family ``kind`` with location ``c * LOC`` and covariance ~ ``s^2``
    (``c``, ``s``: scalars, or 1-d arrays for a batch)."""
    c, s = np.asarray(c, np.float64)[..., None], np.asarray(s, np.float64)[..., None]
    loc = jnp.asarray(c * LOC, dtype)
    if kind == "lowrank":
        w = s[..., None] * W
        return vikl.LowRankMultivariateNormal(loc, jnp.asarray(w, dtype), jnp.asarray(s * s * D, dtype))
    if kind == "diag":
        return vikl.MultivariateNormalDiag(loc, jnp.asarray(s * SD, dtype))
    return vikl.MultivariateNormal(loc, scale_tril=jnp.asarray(s[..., None] * L, dtype))


def _row(dist, i):
    """The ``i``-th member of a batch of Gaussians, as numpy parameters."""
    return type(dist)(*(np.asarray(v)[i] for v in _params(dist)))


def _params(dist):
    if isinstance(dist, vikl.LowRankMultivariateNormal):
        return dist.loc, dist.cov_factor, dist.cov_diag
    if isinstance(dist, vikl.MultivariateNormalDiag):
        return dist.loc, dist.scale_diag
    return dist.loc, dist.scale_tril


def _mp_cov(dist):
    """Location and covariance (mpmath) of ``dist`` at its float parameters."""
    mu = [mp.mpf(float(x)) for x in np.ravel(dist.loc)]
    if isinstance(dist, vikl.LowRankMultivariateNormal):
        w = [[mp.mpf(float(x)) for x in row] for row in np.asarray(dist.cov_factor)]
        d = [mp.mpf(float(x)) for x in np.asarray(dist.cov_diag)]
        cov = [[mp.fsum(w[i][k] * w[j][k] for k in range(2)) + (d[i] if i == j else 0) for j in range(3)]
               for i in range(3)]
    elif isinstance(dist, vikl.MultivariateNormalDiag):
        s = [mp.mpf(float(x)) for x in np.asarray(dist.scale_diag)]
        cov = [[s[i] ** 2 if i == j else mp.mpf(0) for j in range(3)] for i in range(3)]
    else:
        t = [[mp.mpf(float(x)) for x in row] for row in np.asarray(dist.scale_tril)]
        cov = [[mp.fsum(t[i][k] * t[j][k] for k in range(3)) for j in range(3)] for i in range(3)]
    return mu, cov


def _det_inv3(c):
    (a, b, e), (d, f, g), (h, i, k) = c
    cof = [[f * k - g * i, -(d * k - g * h), d * i - f * h],
           [-(b * k - e * i), a * k - e * h, -(a * i - b * h)],
           [b * g - e * f, -(a * g - e * d), a * f - b * d]]
    det = a * cof[0][0] + b * cof[0][1] + e * cof[0][2]
    return det, [[cof[j][r] / det for j in range(3)] for r in range(3)]


def _mp_kl(p, q):
    with mp.workdps(120):
        mp_, sp = _mp_cov(p)
        mq, sq = _mp_cov(q)
        det_p, _ = _det_inv3(sp)
        det_q, inv_q = _det_inv3(sq)
        y = [mp_[i] - mq[i] for i in range(3)]
        trace = mp.fsum(inv_q[i][j] * sp[j][i] for i in range(3) for j in range(3))
        maha = mp.fsum(y[i] * inv_q[i][j] * y[j] for i in range(3) for j in range(3))
        return (trace - 3 + mp.log(det_q / det_p) + maha) / 2


def _check(got, ref, dtype):
    assert not np.isnan(got) and got >= 0
    if ref > np.finfo(dtype).max:
        assert got == np.inf, (got, ref)
    else:
        assert abs(got - float(ref)) <= RTOL[dtype] * float(ref) + 1e-6, (got, mp.nstr(ref, 10))


PAIRS = [("lowrank", "lowrank"), ("lowrank", "diag"), ("diag", "lowrank"), ("full", "lowrank"), ("lowrank", "full")]


@pytest.mark.parametrize("kinds", PAIRS, ids=["-".join(k) for k in PAIRS])
def test_extreme_scales_and_locations_match_mpmath(kinds, dtype):
    """Every combination of scales 1e-15 / 1 / 1e15 (covariances 1e-30 ... 1e30) and
    locations 0 / 1e29 for p and q: never NaN, +inf only where the KL passes the float
    maximum, else within 1e-4 (float32) / 1e-9 (float64) of mpmath."""
    scales, locs = (1e-15, 1.0, 1e15), (0.0, 1e29)
    cp, sp, cq, sq = np.array(list(itertools.product(locs, scales, locs, scales))).T
    p, q = _make(kinds[0], cp, sp, dtype), _make(kinds[1], cq, sq, dtype)
    got = np.asarray(vikl.kl_divergence(p, q))
    for i, value in enumerate(got):
        _check(float(value), _mp_kl(_row(p, i), _row(q, i)), dtype)


def test_lowrank_against_tiny_diag_scale(dtype):
    """The sweep's reproducer: q's ``scale_diag`` of 1e-30 (float32: its variance is 0)."""
    tiny = 1e-30 if dtype == np.float32 else 1e-300
    p = _make("lowrank", 3e29 / 0.3, np.sqrt(tiny), dtype)
    q = _make("diag", 3e29 / 0.3, tiny, dtype)
    ref = _mp_kl(p, q)
    assert float(ref) > 1e29  # 2.718e30 (float32 inputs), 2.718e300 (float64)
    _check(float(vikl.kl_divergence(p, q)), ref, dtype)


def test_far_locations_over_tiny_covariances_overflow_to_inf(dtype):
    """mp - mq = 3e29 over covariances of 1e-30: 8.6e88, +inf in float32, finite in float64."""
    p = _make("lowrank", 1e30, 1e-15, dtype)
    q = _make("lowrank", 1.0, 1e-15, dtype)
    ref = _mp_kl(p, q)
    got = float(vikl.kl_divergence(p, q))
    _check(got, ref, dtype)
    assert (got == np.inf) == (dtype == np.float32)


@pytest.mark.parametrize("family", ["full", "diag", "lowrank"])
def test_normal_against_1d_gaussian_just_below_float_max(family, dtype):
    """KL(Normal(-1, 1e-30) ‖ N([-3e29], 1.2e10^2)) = 3.125e38, finite in float32 (was +inf)."""
    p = vikl.Normal(jnp.asarray(-1.0, dtype), jnp.asarray(1e-30, dtype))
    loc = jnp.asarray([-3e29], dtype)
    if family == "full":
        q = vikl.MultivariateNormal(loc, scale_tril=jnp.asarray([[1.2e10]], dtype))
    elif family == "diag":
        q = vikl.MultivariateNormalDiag(loc, jnp.asarray([1.2e10], dtype))
    else:
        q = vikl.LowRankMultivariateNormal(loc, jnp.zeros((1, 1), dtype), jnp.asarray([1.44e20], dtype))
    pm, ps = float(np.asarray(p.loc)), float(np.asarray(p.scale))
    qm = float(np.asarray(q.loc)[0])
    qs = float(np.asarray(q.scale_tril)[0, 0]) if family == "full" else (
        float(np.asarray(q.scale_diag)[0]) if family == "diag" else mp.sqrt(float(np.asarray(q.cov_diag)[0])))
    with mp.workdps(60):
        r = (mp.mpf(ps) / qs) ** 2
        ref = (r - 1 - mp.log(r) + ((mp.mpf(pm) - qm) / qs) ** 2) / 2
    for a, b in ((p, q), (q, p)) if family != "lowrank" else ((p, q),):
        got = float(vikl.kl_divergence(a, b))
        if a is p:
            assert np.isfinite(got)
            _check(got, ref, dtype)
        else:
            assert not np.isnan(got) and got >= 0


@pytest.mark.parametrize("family", ["full", "diag"])
def test_multivariate_kl_whose_double_overflows(family, dtype):
    """2 KL = 5.76e38 passes the float32 maximum but KL = 2.88e38 does not."""
    p = vikl.MultivariateNormalDiag(jnp.zeros(2, dtype), jnp.ones(2, dtype))
    loc = jnp.asarray([2.4e29, 0.0], dtype)
    if family == "full":
        q = vikl.MultivariateNormal(loc, scale_tril=jnp.asarray([[1e10, 0.0], [0.0, 1e10]], dtype))
    else:
        q = vikl.MultivariateNormalDiag(loc, jnp.asarray([1e10, 1e10], dtype))
    with mp.workdps(60):
        s2 = mp.mpf(float(np.asarray(q.loc)[0])) ** 2 / mp.mpf(1e20)
        r = mp.mpf(1) / mp.mpf(1e20)
        ref = (2 * (r - 1 - mp.log(r)) + s2) / 2
    _check(float(vikl.kl_divergence(p, q)), ref, dtype)
