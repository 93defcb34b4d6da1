"""Scalar continuous KLs at huge and tiny scales against 50-digit mpmath formulas.

The rule checked: for finite inputs a KL whose true value fits in the dtype is
finite and accurate; one whose true value exceeds the largest float is +inf;
nothing is NaN. Scales run from 1e-30 to 3e38 in float32 and 1e-300 to 1e300
in float64 (all pairs, equal ones included, with several location differences),
so the ratios of the two scales reach 1e-68 and 1e68 (float32) — far outside the
normal range of the dtype in both directions.

The references are the textbook closed forms evaluated at 50 digits on the exact
float inputs (mpmath), independent of the cancellation-free arrangements used in
vikl; StudentT against Normal is checked against mpmath quadrature.
"""

import itertools

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest

import vikl

mp.mp.dps = 50
MPMATH_DPS = 50  # every test of this module runs at this precision (conftest)

_SCALES = {
    np.dtype("float32"): [1e-30, 1e-20, 3e-8, 1.0, 7.5, 1e20, 1e30, 1e38, 3e38],
    np.dtype("float64"): [1e-300, 1e-150, 1e-30, 1.0, 7.5, 1e30, 1e150, 1e300, 1.7e308],
}
# Location differences, in units of the larger scale and absolute.
_LOC_SHIFTS = [0.0, 1.0, -2.5, 1e-3]


def _mpf(x):
    return mp.mpf(float(x))


def _ref_normal(m1, s1, m2, s2):
    m1, s1, m2, s2 = map(_mpf, (m1, s1, m2, s2))
    return mp.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - mp.mpf(1) / 2


def _ref_halfnormal(s1, s2):
    return _ref_normal(0.0, s1, 0.0, s2)


def _ref_laplace(m1, b1, m2, b2):
    m1, b1, m2, b2 = map(_mpf, (m1, b1, m2, b2))
    d = abs(m1 - m2)
    return mp.log(b2 / b1) + d / b2 + (b1 / b2) * mp.exp(-d / b1) - 1


def _ref_gumbel(m1, s1, m2, s2):
    m1, s1, m2, s2 = map(_mpf, (m1, s1, m2, s2))
    r = s1 / s2
    return mp.log(s2 / s1) + mp.euler * (r - 1) + (m1 - m2) / s2 + mp.exp((m2 - m1) / s2 + mp.loggamma(1 + r)) - 1


def _ref_cauchy(m1, s1, m2, s2):
    m1, s1, m2, s2 = map(_mpf, (m1, s1, m2, s2))
    return mp.log(((s1 + s2) ** 2 + (m1 - m2) ** 2) / (4 * s1 * s2))


def _ref_exponential(l1, l2):
    l1, l2 = _mpf(l1), _mpf(l2)
    return mp.log(l1 / l2) + l2 / l1 - 1


def _ref_uniform(lo1, hi1, lo2, hi2):
    lo1, hi1, lo2, hi2 = map(_mpf, (lo1, hi1, lo2, hi2))
    if lo2 <= lo1 and hi1 <= hi2:
        return mp.log((hi2 - lo2) / (hi1 - lo1))
    return mp.inf


def _exact(ref, *args):
    """``ref(*args)`` at 50 digits, or at 700 where the textbook form cancels below that.

    The textbook forms add terms of order 1 to give KLs down to 1e-600 (float64 scales
    of 1e-300 with a location shift of 1e-3 of them); 700 digits resolve those.
    """
    value = ref(*args)
    if abs(value) < mp.mpf("1e-30"):
        with mp.workdps(700):
            value = ref(*args)
    return value


def _location_scale_cases(dtype):
    scales = _SCALES[np.dtype(dtype)]
    cases = []
    for s1, s2 in itertools.product(scales, scales):
        big = max(s1, s2)
        for shift in _LOC_SHIFTS:
            for dm in {shift * big, shift}:
                cases.append((0.0, s1, dm, s2))
    with np.errstate(over="ignore"):
        cases = np.asarray(cases, dtype=dtype)
    return cases[np.all(np.isfinite(cases), axis=1)]


def _check(got, refs, dtype, what, rtol):
    info = np.finfo(dtype)
    got = np.asarray(got, np.float64)
    bad = []
    for i, ref in enumerate(refs):
        g = got[i]
        if np.isnan(g):
            bad.append((i, g, ref))
        elif ref > info.max:
            if g != np.inf:
                bad.append((i, g, ref))
        elif not abs(g - float(ref)) <= rtol * float(ref) + 4 * float(info.tiny):
            bad.append((i, g, ref))
    assert not bad, f"{what}: {len(bad)} of {len(refs)} wrong, e.g. " + "; ".join(
        f"case {i}: got {g!r}, exact {mp.nstr(r, 8)}" for i, g, r in bad[:4])


def _rtol(dtype):
    return 2e-6 if np.dtype(dtype) == np.float32 else 2e-14


_LOC_SCALE = {
    "Normal": (vikl.Normal, _ref_normal),
    "LogNormal": (vikl.LogNormal, _ref_normal),
    "Laplace": (vikl.Laplace, _ref_laplace),
    "Gumbel": (vikl.Gumbel, _ref_gumbel),
    "Cauchy": (vikl.Cauchy, _ref_cauchy),
}


@pytest.mark.parametrize("name", sorted(_LOC_SCALE))
def test_location_scale_kl_at_extreme_scales(name, dtype):
    family, ref = _LOC_SCALE[name]
    cases = _location_scale_cases(dtype)
    got = jax.jit(lambda c: vikl.kl_divergence(family(c[:, 0], c[:, 1]), family(c[:, 2], c[:, 3])))(cases)
    refs = [_exact(ref, *row) for row in cases]
    _check(got, refs, dtype, name, _rtol(dtype))


@pytest.mark.parametrize("name", ["HalfNormal", "Exponential"])
def test_scale_family_kl_at_extreme_scales(name, dtype):
    scales = _SCALES[np.dtype(dtype)]
    cases = np.asarray(list(itertools.product(scales, scales)), dtype=dtype)
    family, ref = {"HalfNormal": (vikl.HalfNormal, _ref_halfnormal),
                   "Exponential": (vikl.Exponential, _ref_exponential)}[name]
    got = jax.jit(lambda c: vikl.kl_divergence(family(c[:, 0]), family(c[:, 1])))(cases)
    _check(got, [_exact(ref, *row) for row in cases], dtype, name, _rtol(dtype))


def test_uniform_kl_at_extreme_widths(dtype):
    info = np.finfo(dtype)
    top = float(info.max)
    halves = [float(s) for s in _SCALES[np.dtype(dtype)]] + [top]
    cases = []
    for w1, w2 in itertools.product(halves, halves):
        if w1 <= w2:
            cases += [(-w1, w1, -w2, w2), (0.0, w1, -w2, w2), (-w1, 0.0, -w2, w2)]
    cases = np.asarray(cases, dtype=dtype)
    got = jax.jit(lambda c: vikl.kl_divergence(vikl.Uniform(c[:, 0], c[:, 1]), vikl.Uniform(c[:, 2], c[:, 3])))(cases)
    _check(got, [_exact(_ref_uniform, *row) for row in cases], dtype, "Uniform", _rtol(dtype))


def test_issue_19_reproducers(dtype):
    """The values quoted in issue 19, item 6."""
    kl = vikl.kl_divergence
    assert float(kl(vikl.Normal(0.0, 1e38), vikl.Normal(0.0, 1e38))) == 0.0
    for small in (1e-20, 1e-39):
        try:
            p_h, p_g = vikl.HalfNormal(small), vikl.Gumbel(0.0, small)
        except ValueError:
            continue  # 1e-39 is subnormal in float32; construction may still reject it
        if float(p_h.scale) == 0.0:
            continue  # flushed to zero on this platform
        exact_h = float(_ref_halfnormal(float(p_h.scale), 1e20))
        np.testing.assert_allclose(float(kl(p_h, vikl.HalfNormal(1e20))), exact_h, rtol=_rtol(dtype))
        exact_g = float(_ref_gumbel(0.0, float(p_g.scale), 0.0, 1e20))
        np.testing.assert_allclose(float(kl(p_g, vikl.Gumbel(0.0, 1e20))), exact_g, rtol=_rtol(dtype))
    # exact 1e60: beyond float32 (+inf due), finite in float64
    value = kl(vikl.Laplace(0.0, 1e30), vikl.Laplace(1.0, 1e-30))
    _check(value[None], [_ref_laplace(0.0, 1e30, 1.0, float(jnp.asarray(1e-30)))], dtype, "Laplace", _rtol(dtype))


# ---------------------------------------------------------------- cross-family pairs
def _cross_examples(c):
    """``{name: (p, q)}`` example parameters with every scale multiplied by ``c``."""
    return {
        "Normal": (lambda: vikl.Normal(0.3 * c, 1.2 * c), lambda: vikl.Normal(-0.2 * c, 0.8 * c)),
        "Laplace": (lambda: vikl.Laplace(0.1 * c, 0.9 * c), lambda: vikl.Laplace(-0.3 * c, 1.4 * c)),
        "Gumbel": (lambda: vikl.Gumbel(0.2 * c, 1.1 * c), lambda: vikl.Gumbel(-0.4 * c, 0.8 * c)),
        "Cauchy": (lambda: vikl.Cauchy(0.2 * c, 1.1 * c), lambda: vikl.Cauchy(-0.5 * c, 0.7 * c)),
        "StudentT": (lambda: vikl.StudentT(6.0, 0.1 * c, 1.1 * c), lambda: vikl.StudentT(4.5, -0.2 * c, 0.9 * c)),
        "Uniform": (lambda: vikl.Uniform(0.2 * c, 0.8 * c), lambda: vikl.Uniform(0.1 * c, 1.0 * c)),
        "Exponential": (lambda: vikl.Exponential(1.3 / c), lambda: vikl.Exponential(0.6 / c)),
        "HalfNormal": (lambda: vikl.HalfNormal(1.3 * c), lambda: vikl.HalfNormal(0.8 * c)),
        "Gamma": (lambda: vikl.Gamma(2.5, 1.5 / c), lambda: vikl.Gamma(1.7, 0.8 / c)),
    }


_LOCATION_SCALE = {"Normal", "Laplace", "Gumbel", "Cauchy", "StudentT", "Uniform"}
_POSITIVE_SCALE = {"Exponential", "HalfNormal", "Gamma"}
_CROSS = sorted(
    (p.__name__, q.__name__) for p, q in vikl.registered_kl_pairs()
    if p is not q and ({p.__name__, q.__name__} <= _LOCATION_SCALE or {p.__name__, q.__name__} <= _POSITIVE_SCALE)
)


@pytest.mark.parametrize("pair", _CROSS, ids=["-".join(pq) for pq in _CROSS])
def test_cross_family_kl_is_unit_free(pair, dtype):
    """KL is invariant when both distributions are rescaled by the same factor ``c``.

    At ``c`` = 1e-30..1e30 (float32) and 1e-300..1e300 (float64) the value must equal the
    one at ``c = 1`` (itself checked against SciPy quadrature in test_cross_kl_continuous):
    squares of the scales overflow there and gave NaN for Laplace, Gumbel and Uniform
    against Normal, and differences of ``log`` of huge scales lost digits.
    """
    pn, qn = pair
    base = float(vikl.kl_divergence(_cross_examples(1.0)[pn][0](), _cross_examples(1.0)[qn][1]()))
    factors = [1e-30, 1e-20, 1e20, 1e30] if np.dtype(dtype) == np.float32 else [1e-300, 1e-150, 1e150, 1e300]
    rtol = 2e-6 if np.dtype(dtype) == np.float32 else 1e-13
    for c in factors:
        ex = _cross_examples(c)
        value = float(vikl.kl_divergence(ex[pn][0](), ex[qn][1]()))
        if np.isinf(base):
            assert value == np.inf, (c, value)
        else:
            assert value == pytest.approx(base, rel=rtol, abs=rtol), (c, value, base)


@pytest.mark.parametrize("name", ["Normal", "LogNormal", "Laplace", "Gumbel", "Cauchy"])
def test_equal_huge_locations_with_small_scales_give_zero(name, dtype):
    """Rescaling the location difference must not turn 1e38 - 1e38 into inf - inf."""
    family = getattr(vikl, name)
    big = 1e38 if np.dtype(dtype) == np.float32 else 1e308
    for scale in (1e-5, 1.0, 1e5):
        assert float(vikl.kl_divergence(family(big, scale), family(big, scale))) == 0.0
    value = float(vikl.kl_divergence(vikl.StudentT(5.0, big, 1e-5), vikl.Normal(big, 1e-5)))
    assert np.isfinite(value) and value > 0
