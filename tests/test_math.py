"""vikl._math.square_ratio_term, the Gaussian scale kernel, against 40-digit mpmath.

The kernel reads the exponent of ``r = a / b`` off its bits and uses a short atanh
series in place of ``log``; these tests pin its accuracy on both sides of every
branch point (the exponent changes at r = 0.68 2^k), next to r = 1, and at
the ends of the float range, and check its custom derivative.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

from vikl._math import square_ratio_term


def _mp_term(a, b):
    a, b = (v if isinstance(v, mpmath.mpf) else mpmath.mpf(float(v)) for v in (a, b))
    r = a / b
    return r * r - 1 - 2 * mpmath.log(r)


def _ratios(dtype):
    """Ratios r (as float64 numbers) spread over the whole range and crowded where it is hard."""
    rng = np.random.default_rng(0)
    # The exponent k of r = m 2^k (m in [0.68, 1.36)) changes at 0.68 2^k.
    edges = [c * 2.0**k for k in range(-3, 4) for c in (0.68, np.sqrt(0.5))]
    near_edges = [e * (1 + f) for e in edges for f in (-1e-6, -3e-8, 0.0, 3e-8, 1e-6, 1e-3)]
    near_one = [1 + s * 10.0**-e for e in range(1, 8) for s in (-1, 1)]
    spread = np.exp(rng.uniform(np.log(1e-30), np.log(1e18), 300))
    window = rng.uniform(0.6, 1.5, 200)
    big = [1e-300, 1e-100, 1e100, 1e150] if dtype == np.float64 else []
    return np.concatenate([edges, near_edges, near_one, spread, window, big])


@pytest.mark.parametrize("b", [1.0, 3.7, 1e-20, 1e20])
def test_matches_mpmath_everywhere(b, dtype):
    a = np.asarray(_ratios(dtype) * b, dtype)
    a = a[a >= np.finfo(dtype).tiny]  # inputs themselves normal numbers
    bb = np.full_like(a, b)
    got = np.asarray(jax.jit(square_ratio_term)(jnp.asarray(a), jnp.asarray(bb)), np.float64)
    with mpmath.workdps(40):
        ref = np.array([float(_mp_term(x, b_)) for x, b_ in zip(a, bb)])
    finite = ref < float(np.finfo(dtype).max)
    eps = float(np.finfo(dtype).eps)
    rel = np.abs(got[finite] - ref[finite]) / ref[finite]
    # float32: at most 9.0 eps over 3 million ratios in 1e-30..1e18
    # (python -m benchmarks.normal_kernel_accuracy); the textbook formula is off
    # by ~1e5 eps next to r = 1.
    assert rel.max() <= 16 * eps, (a[finite][np.argmax(rel)], rel.max() / eps)
    assert np.all(got[~finite] == np.inf)


@pytest.mark.parametrize("delta", [1e-3, 1e-5, 1e-7])
def test_next_to_one(delta, dtype):
    a = np.asarray([1 - delta, 1 + delta], dtype)
    got = np.asarray(square_ratio_term(jnp.asarray(a), jnp.ones(2, dtype)), np.float64)
    with mpmath.workdps(40):
        ref = np.array([float(_mp_term(x, 1.0)) for x in a])
    np.testing.assert_allclose(got, ref, rtol=4 * float(np.finfo(dtype).eps))


def test_range_ends(dtype):
    tiny = float(np.finfo(dtype).tiny)
    big = float(np.finfo(dtype).max)
    small_ratio = 1e-37 if dtype == np.float32 else 1e-307  # just above the smallest normal
    a = jnp.asarray([0.0, tiny * 0.5, small_ratio, -1.0, np.nan, big, 1.0], dtype)
    b = jnp.asarray([1.0, 1.0, 1.0, 1.0, 1.0, tiny, np.inf], dtype)
    got = np.asarray(square_ratio_term(a, b))
    # r = 0 or below the smallest normal: +inf (documented); a normal r just above it:
    # the finite value -1 - 2 log r; negative or NaN: NaN; overflowed r: +inf.
    assert got[0] == np.inf and got[1] == np.inf
    with mpmath.workdps(40):
        ref = float(_mp_term(np.asarray(small_ratio, dtype), 1.0))
    np.testing.assert_allclose(got[2], ref, rtol=4 * float(np.finfo(dtype).eps))
    assert np.isnan(got[3]) and np.isnan(got[4])
    assert got[5] == np.inf
    assert got[6] == np.inf  # r = 0 through b = inf


@pytest.mark.parametrize("r", [1e-20, 0.3, 0.68, 0.70710677, 0.9999, 1.0, 1.00001, 1.36, 1.4142137, 7.0, 1e15])
def test_derivatives_match_mpmath(r, dtype):
    b = 2.5
    a = r * b
    ga, gb = jax.grad(square_ratio_term, argnums=(0, 1))(jnp.asarray(a, dtype), jnp.asarray(b, dtype))
    with mpmath.workdps(40):
        a_mp, b_mp = mpmath.mpf(float(np.asarray(a, dtype))), mpmath.mpf(b)
        ref_a = mpmath.diff(lambda x: _mp_term(x, b_mp), a_mp)
        ref_b = mpmath.diff(lambda y: _mp_term(a_mp, y), b_mp)
    rtol = 8 * float(np.finfo(dtype).eps)
    for got, ref in ((ga, ref_a), (gb, ref_b)):
        # At r = 1 both derivatives are 0 (mpmath: about 1e-90).
        assert abs(float(got) - float(ref)) <= rtol * abs(float(ref)) + 1e-30, (r, got, ref)
    # Forward mode and vmap go through the same custom JVP.
    fwd = jax.jacfwd(square_ratio_term)(jnp.asarray(a, dtype), jnp.asarray(b, dtype))
    np.testing.assert_allclose(float(fwd), float(ga), rtol=rtol)
    batched = jax.vmap(jax.grad(square_ratio_term))(jnp.full(3, a, dtype), jnp.full(3, b, dtype))
    np.testing.assert_allclose(np.asarray(batched), float(ga), rtol=rtol)


def test_low_precision_dtypes_use_the_log1p_kernel():
    a = jnp.asarray([0.5, 0.999, 1.0, 3.0], jnp.float16)
    got = np.asarray(square_ratio_term(a, jnp.ones(4, jnp.float16)), np.float64)
    with mpmath.workdps(40):
        ref = np.array([float(_mp_term(float(x), 1.0)) for x in np.asarray(a)])
    np.testing.assert_allclose(got, ref, rtol=5e-3, atol=1e-7)
    assert square_ratio_term(a, a).dtype == jnp.float16


# ---------------------------------------------------------------- issue 19, item 6
def _extreme_pairs(dtype):
    """``(a, b)`` over the whole normal range: b beyond 1 / tiny, ratios below tiny."""
    info = np.finfo(dtype)
    top = float(info.max)
    exps = [-37, -30, -20, -1, 0, 1, 20, 30, 37] if dtype == np.float32 else [-307, -300, -150, 0, 150, 300, 307]
    values = [10.0**e for e in exps] + [top, 0.7 * top, float(info.tiny)]
    pairs = [(a, b) for a in values for b in values]
    pairs += [(b * (1 - 3e-6), b) for b in values[:-1]]  # nearly equal at every magnitude
    return np.asarray(pairs, dtype)


def test_whole_normal_range_is_finite_and_accurate(dtype):
    """Scales above 1 / tiny (8.5e37 in float32) and ratios below tiny (issue 19, item 6).

    Before: 1 / b flushed to 0 for b > 8.5e37, giving +inf for KL(N(0, 1e38) ‖ N(0, 1e38));
    ratios below tiny gave +inf where the value is finite (-1 - 2 log r).
    """
    ab = _extreme_pairs(dtype)
    got = np.asarray(jax.jit(square_ratio_term)(ab[:, 0], ab[:, 1]), np.float64)
    top = float(np.finfo(dtype).max)
    with mpmath.workdps(40):
        ref = [_mp_term(a, b) for a, b in ab]
    for (a, b), g, r in zip(ab, got, ref):
        if r > top:
            assert g == np.inf, (a, b, g)
        else:
            assert abs(g - float(r)) <= 8 * float(np.finfo(dtype).eps) * float(r) + 1e-300, (a, b, g, r)


def test_gradient_over_the_whole_normal_range(dtype):
    """Never NaN where the value is finite; right (against mpmath) for huge scales and tiny ratios.

    d/da = 2 (r^2 - 1) / a and d/db = -2 (r^2 - 1) / b: where these exceed the largest
    float the derivative is +-inf, elsewhere it must match to a few ulps (where normal).
    """
    ab = _extreme_pairs(dtype)
    ga, gb = jax.jit(jax.vmap(jax.grad(square_ratio_term, argnums=(0, 1))))(ab[:, 0], ab[:, 1])
    value = np.asarray(square_ratio_term(ab[:, 0], ab[:, 1]))
    info = np.finfo(dtype)
    with mpmath.workdps(40):
        for (a, b), g_a, g_b, v in zip(ab, np.asarray(ga), np.asarray(gb), value):
            if not np.isfinite(v):
                continue
            a_mp, b_mp = mpmath.mpf(float(a)), mpmath.mpf(float(b))
            r2m1 = (a_mp / b_mp) ** 2 - 1
            for got, ref in ((g_a, 2 * r2m1 / a_mp), (g_b, -2 * r2m1 / b_mp)):
                got = float(got)
                assert not np.isnan(got), (a, b)
                if abs(ref) >= float(info.max):
                    assert got == float(mpmath.sign(ref)) * np.inf, (a, b, got, ref)
                elif abs(ref) > float(info.tiny) * 16:
                    assert abs(got - float(ref)) <= 16 * float(info.eps) * abs(float(ref)), (a, b, got, ref)


# -------------------------------------------- the fast range-complete derivative and sum
def test_gradient_at_random_pairs_over_the_whole_range(dtype):
    """Random pairs with both scales log-uniform over the whole normal range.

    The derivative is taken from products of two factors of about the square root
    of the result, with no second formula for extreme inputs; this checks that no
    intermediate over- or underflows where the derivative itself is a normal float
    (up to a factor 4 below the largest float, where one factor may overflow first).
    Reference: mpmath, d/da = 2 (r^2 - 1) / a and d/db = -2 (r^2 - 1) / b.
    """
    info = np.finfo(dtype)
    rng = np.random.default_rng(19)
    lo, hi = np.log2(float(info.tiny)), np.log2(float(info.max))
    ab = np.exp2(rng.uniform(lo, hi, (300, 2))).astype(dtype)
    ab = ab[np.all((ab >= info.tiny) & np.isfinite(ab), axis=1)]
    # Plus pairs a few ulps apart at random magnitudes (d/da ~ 0, the cancelling case).
    b = np.exp2(rng.uniform(lo + 1, hi - 1, 40)).astype(dtype)
    ab = np.concatenate([ab, np.stack([np.nextafter(np.nextafter(b, np.inf), np.inf), b], 1)]).astype(dtype)
    ga, gb = jax.jit(jax.vmap(jax.grad(square_ratio_term, argnums=(0, 1))))(ab[:, 0], ab[:, 1])
    value = np.asarray(jax.jit(square_ratio_term)(ab[:, 0], ab[:, 1]))
    top, eps = float(info.max), float(info.eps)
    checked = 0
    with mpmath.workdps(40):
        for (a, b_), g_a, g_b, v in zip(ab, np.asarray(ga), np.asarray(gb), value):
            if not np.isfinite(v):
                continue
            a_mp, b_mp = mpmath.mpf(float(a)), mpmath.mpf(float(b_))
            r2m1 = (a_mp / b_mp) ** 2 - 1
            for got, ref in ((float(g_a), 2 * r2m1 / a_mp), (float(g_b), -2 * r2m1 / b_mp)):
                assert not np.isnan(got), (a, b_)
                if abs(ref) > top / 4:
                    assert np.isinf(got) or abs(got - float(ref)) <= 16 * eps * abs(float(ref)), (a, b_, got)
                elif abs(ref) > 16 * float(info.tiny):
                    assert abs(got - float(ref)) <= 16 * eps * abs(float(ref)), (a, b_, got, ref)
                    checked += 1
    assert checked > 300


@pytest.mark.parametrize("shift", [-3.0, -0.5, 0.0, 0.5, 1.5])
def test_half_square_sum_around_its_switch(shift, dtype):
    """Values and derivatives of ½ (term + z²) on both sides of the switch to ½ (r² + z²).

    The switch is at ½ (r² + z²) = max / 4; ``shift`` places the inputs that many
    binades from it, with the scale ratio or the location term dominating.
    Reference: mpmath, ½ (r² - 1 - log r² + z²) and its derivatives in a and z.
    """
    from vikl._math import half_square_sum

    info = np.finfo(dtype)
    size = np.sqrt(float(info.max) / 4) * 2.0**(shift / 2)  # r or z with ½ (r² + z²) ~ max/4
    b = 1.5
    cases = [(size, 0.0), (1.0, size), (size * 0.6, size * 0.8), (1e-20, size)]

    def half(a, z):
        bs = jnp.asarray(b, dtype)
        return half_square_sum(square_ratio_term(a, bs), z, a / bs)

    grad = jax.jit(jax.grad(half, argnums=(0, 1)))
    eps = float(info.eps)
    for r, z in cases:
        a = np.asarray(r * b, dtype)
        z = np.asarray(z, dtype)
        got = float(jax.jit(half)(a, z))
        g_a, g_z = (float(g) for g in grad(a, z))
        with mpmath.workdps(40):
            rr = mpmath.mpf(float(a)) / b
            zz = mpmath.mpf(float(z))
            ref = (rr**2 - 1 - mpmath.log(rr**2) + zz**2) / 2
            ref_a = (rr - 1 / rr) / b
            ref_z = zz
        assert abs(got - float(ref)) <= 4 * eps * float(ref), (r, z, got, ref)
        for g, ref_g in ((g_a, ref_a), (g_z, ref_z)):
            assert abs(g - float(ref_g)) <= 8 * eps * abs(float(ref_g)) + 1e-30, (r, z, g, ref_g)


def test_special_inputs_without_a_second_formula(dtype):
    """The range-complete kernel has one formula; its edges are decided on the bits.

    Positive normal pairs at the ends of the range give the finite value (checked
    against mpmath above); the ratio 0 (a = 0 or subnormal, b = inf) gives +inf, an
    infinite a gives +inf, and a negative or NaN input NaN. The derivatives of the
    finite values at the extreme corners are finite.
    """
    info = np.finfo(dtype)
    tiny, top = float(info.tiny), float(info.max)
    a = jnp.asarray([np.inf, 0.0, tiny / 4, 1.0, -tiny, 1.0, np.nan, tiny, top, tiny, top], dtype)
    b = jnp.asarray([1.0, np.inf, 3.0, -2.0, 1.0, np.nan, np.inf, top, tiny, tiny, top], dtype)
    got = np.asarray(jax.jit(square_ratio_term)(a, b))
    assert got[0] == np.inf and got[1] == np.inf and got[2] == np.inf
    assert np.all(np.isnan(got[3:7]))
    with mpmath.workdps(40):
        ref = [float(_mp_term(x, y)) for x, y in zip(np.asarray(a)[7:], np.asarray(b)[7:])]
    assert np.isfinite(got[7]) and abs(got[7] - ref[0]) <= 4 * float(info.eps) * ref[0]
    assert got[8] == np.inf  # (max / tiny)^2 overflows
    assert got[9] == 0.0 and got[10] == 0.0
    ga, gb = jax.jit(jax.vmap(jax.grad(square_ratio_term, argnums=(0, 1))))(a[7:], b[7:])
    assert np.all(np.isfinite(np.asarray(ga)[[0, 2, 3]])) and np.all(np.isfinite(np.asarray(gb)[[0, 2, 3]]))
