"""Cross-family continuous KLs at extreme parameters against mpmath (issue 19).

Each case is one defect class the adversarial sweep found (NaN from inf - inf or
0 * inf, negative values from cancellation, a lost term): the KL of finite inputs
must be finite and accurate when the exact value is in range, ``+inf`` when it is
beyond the dtype's range, never NaN or negative. The reference is the textbook
formula evaluated by mpmath (120 digits, so that terms of size 1e60 that cancel
keep their digits) at the inputs as rounded to the dtype; tolerances as in
``benchmarks/adversarial_sweep.py``.
"""

import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest

import vikl

DPS = 120  # set per evaluation (mpmath's precision is global; other tests change it)
EULER = mp.euler
TOL = {np.dtype("float32"): (1e-4, 1e-6), np.dtype("float64"): (1e-9, 1e-12)}


def _neg_h_gamma(a, b):
    return mp.log(b) - (a + mp.loggamma(a) + (1 - a) * mp.digamma(a))


def _neg_h_beta(a, b):
    return (-mp.log(mp.beta(a, b)) + (a - 1) * mp.digamma(a) + (b - 1) * mp.digamma(b)
            - (a + b - 2) * mp.digamma(a + b))


def _gumbel_part(m, s, mean, log_e_exp):
    """-E log Gumbel(m, s) from E X and log E exp(-X/s)."""
    return mp.log(s) + (mean - m) / s + mp.exp(m / s + log_e_exp)


def _normal_part(mu, sigma, mean, var):
    return 0.5 * mp.log(2 * mp.pi * sigma**2) + (var + (mean - mu) ** 2) / (2 * sigma**2)


def _gamma_part(c, r, mean, mean_log):
    return mp.loggamma(c) - c * mp.log(r) - (c - 1) * mean_log + r * mean


def _lognormal_part(mu, sigma, mean_log, var_log):
    return mean_log + _normal_part(mu, sigma, mean_log, var_log)


def _ref_normal_gumbel(p, q):
    (mu, sd), (m, s) = p, q
    return -0.5 * mp.log(2 * mp.pi * mp.e * sd**2) + _gumbel_part(m, s, mu, -mu / s + sd**2 / (2 * s**2))


def _ref_laplace_gumbel(p, q):
    (mu, b), (m, s) = p, q
    return -1 - mp.log(2 * b) + _gumbel_part(m, s, mu, -mu / s - mp.log(1 - (b / s) ** 2))


def _ref_exponential_gumbel(p, q):
    (lam,), (m, s) = p, q
    return mp.log(lam) - 1 + _gumbel_part(m, s, 1 / lam, mp.log(lam * s / (1 + lam * s)))


def _ref_gamma_gumbel(p, q):
    (a, b), (m, s) = p, q
    return _neg_h_gamma(a, b) + _gumbel_part(m, s, a / b, -a * mp.log(1 + 1 / (b * s)))


def _ref_uniform_gumbel(p, q):
    (lo, hi), (m, s) = p, q
    w = hi - lo
    e_exp = s / w * (mp.exp(-(lo - m) / s) - mp.exp(-(hi - m) / s))
    return -mp.log(w) + mp.log(s) + ((lo + hi) / 2 - m) / s + e_exp


def _ref_gumbel_normal(p, q):
    (m, s), (mu, sigma) = p, q
    return -mp.log(s) - EULER - 1 + _normal_part(mu, sigma, m + EULER * s, mp.pi**2 * s**2 / 6)


def _ref_gamma_normal(p, q):
    (a, b), (mu, sigma) = p, q
    return _neg_h_gamma(a, b) + _normal_part(mu, sigma, a / b, a / b**2)


def _ref_beta_normal(p, q):
    (a, b), (mu, sigma) = p, q
    n = a + b
    return _neg_h_beta(a, b) + _normal_part(mu, sigma, a / n, a * b / (n**2 * (n + 1)))


def _ref_beta_exponential(p, q):
    (a, b), (lam,) = p, q
    return _neg_h_beta(a, b) - mp.log(lam) + lam * a / (a + b)


def _ref_beta_gamma(p, q):
    (a, b), (c, r) = p, q
    return _neg_h_beta(a, b) + _gamma_part(c, r, a / (a + b), mp.digamma(a) - mp.digamma(a + b))


def _ref_gamma_exponential(p, q):
    (a, b), (lam,) = p, q
    return _neg_h_gamma(a, b) - mp.log(lam) + lam * a / b


def _ref_exponential_lognormal(p, q):
    (lam,), (mu, sigma) = p, q
    return mp.log(lam) - 1 + _lognormal_part(mu, sigma, -EULER - mp.log(lam), mp.pi**2 / 6)


def _ref_gamma_lognormal(p, q):
    (a, b), (mu, sigma) = p, q
    return _neg_h_gamma(a, b) + _lognormal_part(mu, sigma, mp.digamma(a) - mp.log(b), mp.polygamma(1, a))


def _ref_lognormal_gamma(p, q):
    (mu, sigma), (c, r) = p, q
    neg_h = -mu - 0.5 * mp.log(2 * mp.pi * mp.e * sigma**2)
    return neg_h + _gamma_part(c, r, mp.exp(mu + sigma**2 / 2), mu)


def _ref_uniform_beta(p, q):
    """By quadrature of log(p/q) over [l, h] (independent of the closed form)."""
    (lo, hi), (a, b) = p, q
    w = hi - lo
    log_b = mp.loggamma(a) + mp.loggamma(b) - mp.loggamma(a + b)

    def integrand(x):
        return (-mp.log(w) - (a - 1) * mp.log(x) - (b - 1) * mp.log1p(-x) + log_b) / w

    with mp.workdps(40):
        return mp.quad(integrand, [lo, hi])


# pair -> (p family, q family, reference, cases as ((p args), (q args)))
CASES = {
    "Normal-Gumbel": (vikl.Normal, vikl.Gumbel, _ref_normal_gumbel, [
        ((-1e30, 1e-30), (-1.0, 1e-30)),  # was -inf (inf - inf), exact +inf
        ((1.5, 1.0), (-1e30, 1e-30)),  # was NaN
        ((0.0, 1e10), (-1e30, 1e-10)),  # was NaN, exact 1e40
        ((1e30, 1.0), (1e30, 1e30)),
        ((0.3, 1.2), (-0.5, 2.0)),
    ]),
    "Laplace-Gumbel": (vikl.Laplace, vikl.Gumbel, _ref_laplace_gumbel, [
        ((-1e30, 1e-30), (-1e30, 1e-10)),  # was NaN, exact 45.36
        ((-1.0, 1e-30), (1e30, 1e-10)),  # was -inf
        ((0.3, 0.5), (-0.2, 2.0)),
    ]),
    "Exponential-Gumbel": (vikl.Exponential, vikl.Gumbel, _ref_exponential_gumbel, [
        ((1e-30,), (1e30, 1e-30)),  # was NaN
        ((1e10,), (-1.0, 1e30)),  # was NaN, exact 92.10
        ((1e30,), (1.5, 1e30)),  # was NaN, exact 138.2
        ((1.0,), (1e30, 1e-10)),  # was -inf
        ((2.0,), (0.5, 1.5)),
    ]),
    "Gamma-Gumbel": (vikl.Gamma, vikl.Gumbel, _ref_gamma_gumbel, [
        ((1e-30, 1e-30), (1.5, 1e-30)),  # was 5e29, exact +inf
        ((1e10, 1e-30), (-1.0, 1e30)),  # was +inf, exact 1e10
        ((1e30, 1e-10), (0.0, 1e30)),  # was +inf, exact 1e10
        ((1.0, 1.0), (1e30, 1e-30)),  # was -inf
        ((1e-10, 1e-30), (1e30, 1e-30)),  # was NaN
        ((2.5, 1.5), (0.5, 1.5)),
    ]),
    "Uniform-Gumbel": (vikl.Uniform, vikl.Gumbel, _ref_uniform_gumbel, [
        ((0.0, 1e-30), (-1.0, 1e30)),  # lost the E exp term: 138.155 for 139.155
        ((0.0, 1e-10), (1e30, 1e30)),  # 91.10 for 93.82
        ((0.0, 1e-30), (1e30, 1e10)),  # was -1e20, exact +inf
        ((-1e30, 0.0), (-1.0, 1e-30)),  # was -inf
        ((-1.0, 2.0), (0.5, 1.5)),
    ]),
    "Gumbel-Normal": (vikl.Gumbel, vikl.Normal, _ref_gumbel_normal, [
        ((-1.0, 1e-10), (-1.0, 1e-10)),  # the mean m + gamma s rounded to m: 0.164 for 0.331
        ((-1e30, 1e10), (0.0, 1e-30)),  # was NaN
        ((0.5, 2.0), (1.0, 3.0)),
    ]),
    "Gamma-Normal": (vikl.Gamma, vikl.Normal, _ref_gamma_normal, [
        ((1e-30, 1e-30), (-1e30, 1e30)),  # was NaN (inf/inf), exact 1e30
        ((1.0, 1.0), (-1e30, 1e30)),  # was NaN, exact 69.5
        ((1e-10, 1e-30), (0.0, 1e10)),  # was +inf
        ((1e10, 1e-30), (1e30, 1e-30)),  # was NaN, exact +inf
        ((3.0, 2.0), (1.0, 0.5)),
    ]),
    "Beta-Normal": (vikl.Beta, vikl.Normal, _ref_beta_normal, [
        ((1e-30, 1e-30), (-1.0, 1.0)),  # was NaN (0/0 variance), exact 1e30
        ((1e-30, 1e-30), (0.0, 1e-30)),  # was NaN, exact +inf in float32
        ((1.0, 1e30), (0.0, 1e-30)),  # the variance product underflowed: 0.419 for 0.919
        ((2.0, 3.0), (0.2, 0.4)),
    ]),
    "Beta-Exponential": (vikl.Beta, vikl.Exponential, _ref_beta_exponential, [
        ((1.0, 1e10), (1e10,)),  # was -1.8e-15 in float64 (exact 1e-20)
        ((2.0, 3.0), (1.5,)),
    ]),
    "Beta-Gamma": (vikl.Beta, vikl.Gamma, _ref_beta_gamma, [
        ((1e10, 1.0), (1e30, 1e30)),  # was -8.3e23 (lgamma(c) - c log r cancelling)
        ((1.0, 1e-10), (1e30, 1e30)),  # Jensen gap lost: 1e10 for 6.4e19
        ((1e-30, 1e-10), (1e-10, 1e-30)),  # was 0, exact 1e20 (1/a terms cancelling)
        ((1e-30, 1e-30), (1.0, 1.0)),  # was NaN
        ((1e-30, 1e10), (1e-10, 1e30)),
        ((1e-30, 1e-10), (1e-30, 1e-30)),  # lgamma(a) vs lgamma(c) cancelling: 7.6e-6 for 1e-10
        ((2.0, 3.0), (2.5, 4.0)),
    ]),
    "Uniform-Beta": (vikl.Uniform, vikl.Beta, _ref_uniform_beta, [
        ((0.0, 1e-30), (1.0, 1e-30)),  # E log(1 - X) lost: 137.155 for 138.155
        ((0.0, 1e-30), (1.0, 1e30)),  # (b - 1) swamped log B: 1e30 for 0.5
        ((0.0, 1e-10), (1.0, 1e10)),  # was -826.9 in float64, exact 0.5
        ((0.0, 1e-10), (1e10, 1e30)),  # was -8.3e22 in float64, exact 5e19
        ((0.0, 1e-10), (1e-10, 1e-10)),
        ((0.2, 0.7), (2.0, 3.0)),
    ]),
    "Gamma-Exponential": (vikl.Gamma, vikl.Exponential, _ref_gamma_exponential, [
        ((1e-30, 1e-30), (1e10,)),  # was +inf (l / b overflowed), exact 1e30
        ((1e10, 1e-30), (1e30,)),  # exact +inf in float32
        ((2.0, 1.5), (0.7,)),
    ]),
    "Exponential-LogNormal": (vikl.Exponential, vikl.LogNormal, _ref_exponential_lognormal, [
        ((1e-30,), (-1e30, 1e30)),  # was NaN (inf/inf), exact 68.9
        ((1e10,), (1e30, 1e30)),
        ((2.0,), (0.3, 1.5)),
    ]),
    "Gamma-LogNormal": (vikl.Gamma, vikl.LogNormal, _ref_gamma_lognormal, [
        ((1e-30, 1e-30), (-1e30, 1e30)),  # was NaN
        ((1e-10, 1e-10), (-1.0, 1e30)),  # was 0, exact 45.97
        ((1e10, 1e10), (0.0, 1e-10)),  # digamma(a) - log b lost: 5.18e9 for 5.0e9
        ((3.0, 2.0), (0.1, 0.7)),
    ]),
    "LogNormal-Gamma": (vikl.LogNormal, vikl.Gamma, _ref_lognormal_gamma, [
        ((0.0, 1e-30), (1e30, 1e30)),  # was -8.3e23
        ((-1e30, 1e-30), (1e-10, 1e-30)),  # was 0, exact 1e20
        ((1e30, 1.0), (1e10, 1.0)),  # was NaN, exact +inf
        ((0.2, 0.5), (2.0, 1.5)),
    ]),
}


def _rounded(values, dtype):
    return [mp.mpf(float(np.asarray(v, dtype))) for v in values]


@pytest.mark.parametrize("pair", sorted(CASES))
def test_cross_pair_extremes_match_mpmath(pair, dtype):
    p_cls, q_cls, ref, cases = CASES[pair]
    rtol, atol = TOL[np.dtype(dtype)]
    p_args = [jnp.asarray([c[0][i] for c in cases], dtype) for i in range(len(cases[0][0]))]
    q_args = [jnp.asarray([c[1][i] for c in cases], dtype) for i in range(len(cases[0][1]))]
    got = np.asarray(vikl.kl_divergence(p_cls(*p_args), q_cls(*q_args)), np.float64)
    big = float(np.finfo(dtype).max)
    for k, (p, q) in enumerate(cases):
        with mp.workdps(DPS):
            want = ref(_rounded(p, dtype), _rounded(q, dtype))
        where = f"{pair} {p} {q} ({np.dtype(dtype).name}): got {got[k]!r}, mpmath {mp.nstr(want, 10)}"
        assert not np.isnan(got[k]) and got[k] >= 0, where
        if want > big:
            assert got[k] == np.inf, where
        else:
            assert abs(got[k] - float(want)) <= rtol * abs(float(want)) + atol, where
