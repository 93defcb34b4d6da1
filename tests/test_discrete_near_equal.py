"""Discrete KLs and information measures of nearly equal distributions (issue 19, items 2, 5, 7, 12).

Every closed form is checked against mpmath at 80 digits, evaluated on the exact
float values the library received (arrays renormalized, as the library does), at
relative parameter differences 1e-1 ... 1e-7 and extreme probabilities
(1e-30, 1 - 1e-7), in float32 and float64. The old closed forms lost every
digit there and went negative; the new ones must keep the dtype's relative
accuracy and never be negative.
"""

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs
from scipy.special import logsumexp as scipy_logsumexp

import vikl
from tests.conftest import tol

RELS = [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7]
BASES = [0.1, 0.3, 0.5, 0.9, 1e-6, 1e-30, 1 - 1e-7]


MPMATH_DPS = 80  # every reference here at 80 digits (the conftest fixture applies it)


def M(x):
    return mp.mpf(float(x))


def _sig(z):
    return 1 / (1 + mp.exp(-z))


def _kl_bern(a, b):
    out = mp.mpf(0)
    if a > 0:
        out += a * mp.log(a / b)
    if a < 1:
        out += (1 - a) * mp.log((1 - a) / (1 - b))
    return out


def _kl_vec(p, q):
    """KL of two probability vectors (mp numbers), each renormalized."""
    sp, sq = sum(p), sum(q)
    return sum((x / sp) * mp.log((x / sp) / (y / sq)) for x, y in zip(p, q) if x > 0)


def _check(got, refs, dtype, scale=1.0):
    got = np.asarray(got, np.float64).ravel()
    ref = np.array([float(r) for r in refs])
    assert (got >= 0).all(), got[got < 0]
    atol = 2 * float(jnp.finfo(dtype).tiny)  # values below it are not representable
    np.testing.assert_allclose(got, ref, rtol=scale * tol(dtype), atol=atol)


def _near_pairs(dtype):
    """Base probabilities and their perturbations by each relative difference (distinct floats)."""
    a, b = [], []
    for base in BASES:
        for rel in RELS:
            other = base * (1 + rel) if base < 0.5 else 1 - (1 - base) * (1 + rel)
            x, y = np.asarray(base, dtype), np.asarray(other, dtype)
            if x != y and 0 < y < 1:
                a.append(x)
                b.append(y)
    return jnp.asarray(np.array(a)), jnp.asarray(np.array(b))


def test_issue_reproducer_bernoulli_float32():
    got = vikl.kl_divergence(vikl.Bernoulli(probs=0.1), vikl.Bernoulli(probs=0.10001))
    ref = _kl_bern(M(np.float32(0.1)), M(np.float32(0.10001)))
    assert float(got) > 0
    np.testing.assert_allclose(float(got), float(ref), rtol=2e-6)  # was -1.56e-08
    assert float(ref) == pytest.approx(5.55e-10, rel=2e-3)


def test_bernoulli_binomial_geometric_probs_near_equal(dtype):
    a, b = _near_pairs(dtype)
    refs = [_kl_bern(M(x), M(y)) for x, y in zip(np.asarray(a), np.asarray(b))]
    _check(vikl.kl_divergence(vikl.Bernoulli(probs=a), vikl.Bernoulli(probs=b)), refs, dtype)
    n = jnp.asarray(7.0, dtype)
    _check(vikl.kl_divergence(vikl.Binomial(n, probs=a), vikl.Binomial(n, probs=b)), [7 * r for r in refs], dtype)
    geo = [r / M(x) for r, x in zip(refs, np.asarray(a))]
    _check(vikl.kl_divergence(vikl.Geometric(probs=a), vikl.Geometric(probs=b)), geo, dtype)


def test_bernoulli_geometric_logits_near_equal(dtype):
    za = []
    zb = []
    for base in BASES:
        z = np.log(base) - np.log1p(-base)
        for rel in RELS:
            x, y = np.asarray(z, dtype), np.asarray(z + rel * (1 + abs(z)), dtype)
            if x != y:
                za.append(x)
                zb.append(y)
    za, zb = jnp.asarray(np.array(za)), jnp.asarray(np.array(zb))
    refs = [_kl_bern(_sig(M(x)), _sig(M(y))) for x, y in zip(np.asarray(za), np.asarray(zb))]
    _check(vikl.kl_divergence(vikl.Bernoulli(logits=za), vikl.Bernoulli(logits=zb)), refs, dtype)
    geo = [r / _sig(M(x)) for r, x in zip(refs, np.asarray(za))]
    _check(vikl.kl_divergence(vikl.Geometric(logits=za), vikl.Geometric(logits=zb)), geo, dtype)


def test_poisson_near_equal(dtype):
    a, b = [], []
    for lam in [1e-3, 0.5, 3.0, 100.0, 1e4]:
        for rel in RELS:
            x, y = np.asarray(lam, dtype), np.asarray(lam * (1 + rel), dtype)
            if x != y:
                a.append(x)
                b.append(y)
    refs = [M(x) * mp.log(M(x) / M(y)) - M(x) + M(y) for x, y in zip(a, b)]
    got = vikl.kl_divergence(vikl.Poisson(jnp.asarray(np.array(a))), vikl.Poisson(jnp.asarray(np.array(b))))
    _check(got, refs, dtype)


def _near_vectors(dtype, k=5):
    rng = np.random.default_rng(19)
    ps, qs = [], []
    for base in BASES:
        for rel in RELS:
            p = rng.dirichlet(np.ones(k))
            p[0] = base
            p /= p.sum()
            q = p * (1 + rel * rng.standard_normal(k))
            q /= q.sum()
            ps.append(p)
            qs.append(q)
    return jnp.asarray(np.array(ps), dtype), jnp.asarray(np.array(qs), dtype)


def test_probability_arrays_and_categorical_probs_near_equal(dtype):
    p, q = _near_vectors(dtype)
    P = [[M(v) for v in row] for row in np.asarray(p)]
    Q = [[M(v) for v in row] for row in np.asarray(q)]
    refs = [_kl_vec(x, y) for x, y in zip(P, Q)]
    _check(vikl.kl_divergence(p, q), refs, dtype)
    _check(vikl.kl_divergence(vikl.Categorical(probs=p), vikl.Categorical(probs=q)), refs, dtype)
    # cross-entropy = H(p) + KL >= H(p), and accurate
    h = vikl.entropy(p)
    ce = vikl.cross_entropy(p, q)
    assert (np.asarray(ce) >= np.asarray(h)).all()
    h_ref = [-sum((x / sum(r)) * mp.log(x / sum(r)) for x in r if x > 0) for r in P]
    _check(ce, [a + b for a, b in zip(h_ref, refs)], dtype)

    def js(x, y):
        sx, sy = sum(x), sum(y)
        out = mp.mpf(0)
        for u, v in zip(x, y):
            u, v = u / sx, v / sy
            m = (u + v) / 2
            out += (u * mp.log(u / m) if u > 0 else 0) + (v * mp.log(v / m) if v > 0 else 0)
        return out / 2

    _check(vikl.jensen_shannon(p, q), [js(x, y) for x, y in zip(P, Q)], dtype)


def test_categorical_logits_near_equal(dtype):
    rng = np.random.default_rng(7)
    zp = 3 * rng.standard_normal((len(RELS), 5))
    zq = zp + np.array(RELS)[:, None] * rng.standard_normal((len(RELS), 5))
    zp, zq = jnp.asarray(zp, dtype), jnp.asarray(zq, dtype)

    def logp(z):
        z = [M(v) for v in z]
        lse = mp.log(sum(mp.exp(v) for v in z))
        return [v - lse for v in z]

    refs = []
    for a, b in zip(np.asarray(zp), np.asarray(zq)):
        la, lb = logp(a), logp(b)
        refs.append(sum(mp.exp(x) * (x - y) for x, y in zip(la, lb)))
    got = vikl.kl_divergence(vikl.Categorical(logits=zp), vikl.Categorical(logits=zq))
    _check(got, refs, dtype)
    ce = vikl.cross_entropy(vikl.Categorical(logits=zp), vikl.Categorical(logits=zq))
    assert (np.asarray(ce) >= np.asarray(vikl.Categorical(logits=zp).entropy())).all()


def test_cross_family_pairs_near_zero(dtype):
    """Ber‖Poi, Ber‖Bin, Ber‖Geo, Poi‖Geo, Bin‖Geo where both are close to the point mass at 0."""
    def f(v):
        return jnp.asarray(v, dtype)

    for lam in [1e-4, 1e-3, 1e-2, 0.1, 0.45]:
        for rel in [0.0, 1e-3, 1e-1, 1.0]:
            a, lam_, bg = f(lam * (1 + rel)), f(lam), f(1 - lam)
            A, L, B = M(a), M(lam_), M(bg)
            ref = (1 - A) * mp.log((1 - A) / mp.exp(-L)) + A * mp.log(A / (L * mp.exp(-L)))
            _check(vikl.kl_divergence(vikl.Bernoulli(probs=a), vikl.Poisson(lam_)), [ref], dtype, 2)
            for n in (1, 2, 5):
                b = f(lam / n)
                q0, q1 = (1 - M(b)) ** n, n * M(b) * (1 - M(b)) ** (n - 1)
                ref = (1 - A) * mp.log((1 - A) / q0) + A * mp.log(A / q1)
                got = vikl.kl_divergence(vikl.Bernoulli(probs=a), vikl.Binomial(f(n), probs=b))
                _check(got, [ref], dtype, 2)
            ref = (1 - A) * mp.log((1 - A) / B) + A * mp.log(A / (B * (1 - B)))
            _check(vikl.kl_divergence(vikl.Bernoulli(probs=a), vikl.Geometric(probs=bg)), [ref], dtype, 2)

            def pois(k, L=L):
                return mp.exp(-L) * L**k / mp.factorial(k)

            ref = sum(pois(k) * mp.log(pois(k) / (B * (1 - B) ** k)) for k in range(80))
            _check(vikl.kl_divergence(vikl.Poisson(lam_), vikl.Geometric(probs=bg)), [ref], dtype, 2)
            pb = M(f(lam / 5))
            ref = 0
            for k in range(6):
                pk = mp.binomial(5, k) * pb**k * (1 - pb) ** (5 - k)
                ref += pk * mp.log(pk / (B * (1 - B) ** k))
            got = vikl.kl_divergence(vikl.Binomial(f(5.0), probs=f(lam / 5)), vikl.Geometric(probs=bg))
            _check(got, [ref], dtype, 2)


@settings(max_examples=60, deadline=None)
@given(
    a=hs.floats(1e-30, 1 - 1e-7),
    rel=hs.floats(-1e-2, 1e-2),
    z=hs.floats(-30, 30),
    dz=hs.floats(-1e-3, 1e-3),
)
def test_kl_is_never_negative_property(a, rel, z, dz):
    b = min(max(a * (1 + rel), 1e-38), 1 - 1e-7)
    ks = [
        vikl.kl_divergence(vikl.Bernoulli(probs=np.float32(a)), vikl.Bernoulli(probs=np.float32(b))),
        vikl.kl_divergence(vikl.Bernoulli(logits=np.float32(z)), vikl.Bernoulli(logits=np.float32(z + dz))),
        vikl.kl_divergence(vikl.Poisson(np.float32(a * 10)), vikl.Poisson(np.float32(b * 10))),
        vikl.kl_divergence(vikl.Geometric(probs=np.float32(a)), vikl.Geometric(probs=np.float32(b))),
        vikl.kl_divergence(jnp.array([a, 1 - a], jnp.float32), jnp.array([b, 1 - b], jnp.float32)),
        vikl.jensen_shannon(jnp.array([a, 1 - a], jnp.float32), jnp.array([b, 1 - b], jnp.float32)),
    ]
    for k in ks:
        assert float(k) >= 0 and not np.isnan(float(k))


# ------------------------------------------------------------------ item 5: mutual information
def _mi_ref(t):
    T = [[M(v) for v in r] for r in t]
    s = sum(sum(r) for r in T)
    T = [[v / s for v in r] for r in T]
    px = [sum(r) for r in T]
    py = [sum(T[i][j] for i in range(len(T))) for j in range(len(T[0]))]
    return sum(
        T[i][j] * mp.log(T[i][j] / (px[i] * py[j]))
        for i in range(len(T)) for j in range(len(T[0])) if T[i][j] > 0
    )


def test_mutual_information_nearly_independent(dtype):
    # The issue's table: 50-digit mpmath gives 8.0000002e-08 for the decimal table
    # (7.9990795e-08 for its float32 rounding); the old code gave 4.08e-08.
    tables = [np.array([[0.2501, 0.2499], [0.2499, 0.2501]])]
    rng = np.random.default_rng(5)
    for eps in (1e-3, 1e-5, 1e-7):
        px, py = rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(4))
        t = np.outer(px, py) * (1 + eps * rng.standard_normal((3, 4)))
        tables.append(t / t.sum())
    for t in tables:
        arr = jnp.asarray(t, dtype)
        ref = _mi_ref(np.asarray(arr))
        _check(vikl.mutual_information(arr), [ref], dtype)
    assert float(_mi_ref(tables[0])) == pytest.approx(8.0000002e-08, rel=1e-7)


def test_conditional_entropy_nearly_deterministic(dtype):
    for e in (1e-2, 1e-4, 1e-6):
        t = jnp.asarray([[0.5 - e, e], [0.0, 0.5]], dtype)
        T = [[M(v) for v in r] for r in np.asarray(t)]
        s = sum(sum(r) for r in T)
        T = [[v / s for v in r] for r in T]
        ref = -sum(T[i][j] * mp.log(T[i][j] / sum(T[i])) for i in range(2) for j in range(2) if T[i][j] > 0)
        _check(vikl.conditional_entropy(t), [ref], dtype)


# ------------------------------------------------------------------ item 7: 16-bit validation
@pytest.mark.parametrize("dt", [jnp.bfloat16, jnp.float16])
def test_16_bit_probability_arrays_are_validated(dt):
    with pytest.raises(ValueError, match=r"p must sum to 1.*got sums in \[1\.(69|70)"):
        vikl.entropy(jnp.array([0.9, 0.8], dt))
    with pytest.raises(ValueError, match="sum to 1"):
        vikl.kl_divergence(jnp.array([0.6, 0.6], dt), jnp.array([0.5, 0.5], dt))
    with pytest.raises(ValueError, match="non-negative"):
        vikl.entropy(jnp.array([1.5, -0.5], dt))
    with pytest.raises(ValueError, match="NaN"):
        vikl.entropy(jnp.array([jnp.nan, 1.0], dt))
    # rows normalized in float32 and rounded to 16 bits are accepted, whatever their length
    rng = np.random.default_rng(0)
    for k in (2, 10, 1000):
        p = jnp.asarray(rng.dirichlet(np.ones(k), size=4), dt)
        h = vikl.entropy(p)
        assert h.dtype == dt and np.isfinite(np.asarray(h, np.float32)).all()


# ------------------------------------------------------------------ item 12: log_prob and base
def test_discrete_log_probs_at_inf_negative_and_fractional_match_scipy():
    xs = np.array([np.inf, -np.inf, -1.0, 2.5, 0.0, 1.0, 3.0], np.float32)
    cases = [
        (vikl.Poisson(3.0), st.poisson(3.0)),
        (vikl.Bernoulli(probs=0.3), st.bernoulli(0.3)),
        (vikl.Binomial(5.0, probs=0.3), st.binom(5, 0.3)),
        (vikl.Geometric(probs=0.3), st.geom(0.3, loc=-1)),
    ]
    for d, ref in cases:
        got = np.asarray(d.log_prob(jnp.asarray(xs)), np.float64)
        expected = ref.logpmf(xs.astype(np.float64))
        # scipy's poisson.logpmf(inf) is NaN (inf - inf); the pmf there is 0.
        expected[0] = -np.inf
        np.testing.assert_allclose(got, expected, rtol=1e-5, err_msg=repr(d))
    cat = vikl.Categorical(probs=jnp.array([0.2, 0.3, 0.5]))
    got = np.asarray(cat.log_prob(jnp.asarray(xs)))
    assert np.array_equal(got[:4], [-np.inf] * 4)


@pytest.mark.parametrize("base", [np.nan, np.inf, -np.inf, 0.0, 1.0, -2.0])
def test_bad_base_is_rejected_by_every_measure(base):
    p, q = jnp.array([0.5, 0.5]), jnp.array([0.25, 0.75])
    joint = jnp.array([[0.25, 0.25], [0.25, 0.25]])
    calls = [
        lambda: vikl.entropy(p, base=base),
        lambda: vikl.entropy(vikl.Normal(0.0, 1.0), base=base),
        lambda: vikl.cross_entropy(p, q, base=base),
        lambda: vikl.jensen_shannon(p, q, base=base),
        lambda: vikl.mutual_information(joint, base=base),
        lambda: vikl.conditional_entropy(joint, base=base),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"base must be > 0, != 1 and finite"):
            call()


def test_base_is_static_under_jit():
    p = jnp.array([0.5, 0.25, 0.25])
    with pytest.raises(TypeError, match="base must be a static Python number"):
        jax.jit(lambda b: vikl.entropy(p, base=b))(2.0)
    with pytest.raises(TypeError, match="base must be a real number"):
        vikl.entropy(p, base="2")
    f = jax.jit(lambda x, base: vikl.entropy(x, base=base), static_argnames="base")
    assert float(f(p, base=2)) == pytest.approx(1.5, rel=1e-6)
    assert float(vikl.entropy(p, base=np.float32(2))) == pytest.approx(1.5, rel=1e-6)


# ------------------------------------------------------------------ large batches (row blocks)
def _big_batch(dtype, b=300, k=1000):
    """``b`` rows of ``k`` probabilities: far-apart pairs, and nearly equal pairs at ``NEAR_ROWS``."""
    rng = np.random.default_rng(23)
    p = rng.dirichlet(np.ones(k), size=b)
    q = rng.dirichlet(np.ones(k), size=b)
    for row, rel in zip(NEAR_ROWS, [1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-5]):
        q[row] = p[row] * (1 + rel * rng.standard_normal(k))
    p[1, :7] = 0.0  # categories with p = 0 < q
    p /= p.sum(-1, keepdims=True)
    q /= q.sum(-1, keepdims=True)
    return jnp.asarray(p, dtype), jnp.asarray(q, dtype)


# Block boundaries and the repeated rows of the shifted last block (300 rows of 1000: blocks
# of 131 rows starting at 0, 131 and 169).
NEAR_ROWS = [0, 130, 131, 168, 169, 299]


def _f64_kl(p, q):
    """Float64 ``sum p log(p / q)`` of the renormalized rows (``0 log 0 = 0``)."""
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    p, q = p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)
    pos = p > 0
    with np.errstate(divide="ignore"):  # q = 0 < p gives +inf
        return np.where(pos, p * np.log(np.where(pos, p, 1) / np.where(pos, q, 1)), 0).sum(-1)


def test_large_batch_is_computed_in_row_blocks_and_matches_references(dtype):
    from vikl._probs import kl_probs

    p, q = _big_batch(dtype)
    if jax.default_backend() == "cpu":  # the row-block loop runs here
        assert "while(" in jax.jit(kl_probs).lower(p, q).compile().as_text()
    got = vikl.kl_divergence(p, q)
    got_jit = jax.jit(lambda a, b: vikl.kl_divergence(vikl.Categorical(probs=a), vikl.Categorical(probs=b)))(p, q)
    assert got.shape == (300,) and got.dtype == dtype
    np.testing.assert_array_equal(np.asarray(got), np.asarray(got_jit))
    near = [_kl_vec([M(v) for v in np.asarray(p[i])], [M(v) for v in np.asarray(q[i])]) for i in NEAR_ROWS]
    _check(got[np.array(NEAR_ROWS)], near, dtype)
    far = np.setdiff1d(np.arange(300), NEAR_ROWS)
    np.testing.assert_allclose(np.asarray(got)[far], _f64_kl(p, q)[far], rtol=tol(dtype))
    assert float(min(near)) < 1e-12 < float(got.min()) * 1e3  # the nearly equal rows are tiny, yet > 0


def test_large_batch_broadcasts_one_row_against_many(dtype):
    p, q = _big_batch(dtype)
    one = p[5]
    for a, b in [(one, q), (q, one), (p[:, None, :], q[None, 1:5, :])]:
        got = vikl.kl_divergence(a, b)
        ref = _f64_kl(*np.broadcast_arrays(np.asarray(a), np.asarray(b)))
        assert got.shape == ref.shape
        np.testing.assert_allclose(np.asarray(got), ref, rtol=tol(dtype))


def test_large_batch_gradient_and_vmap(dtype):
    from vikl._probs import kl_probs

    p, q = _big_batch(dtype)
    gp, gq = jax.grad(lambda a, b: jnp.sum(kl_probs(a, b)), argnums=(0, 1))(p, q)
    with jax.enable_x64(True):
        a, b = jnp.asarray(np.asarray(p), jnp.float64), jnp.asarray(np.asarray(q), jnp.float64)

        def textbook(a, b):  # float64 reference: sum p (log p - log q), 0 log 0 = 0
            pos = a > 0
            log_ratio = jnp.log(jnp.where(pos, a, 1.0)) - jnp.log(jnp.where(pos, b, 1.0))
            return jnp.sum(jnp.where(pos, a * log_ratio, 0.0))

        rp, rq = jax.grad(textbook, argnums=(0, 1))(a, b)
        rp, rq = np.asarray(rp), np.asarray(rq)
    for g, r in [(gp, rp), (gq, rq)]:
        assert np.isfinite(np.asarray(g)).all()
        np.testing.assert_allclose(np.asarray(g, np.float64), r, rtol=tol(dtype) * 10, atol=tol(dtype))
    pair = jnp.stack([p, q]), jnp.stack([q, p])
    both = np.asarray(jax.vmap(kl_probs)(*pair))
    far = np.setdiff1d(np.arange(300), NEAR_ROWS)  # float64 textbook values lose digits on the near rows
    np.testing.assert_allclose(both[1, far], _f64_kl(q, p)[far], rtol=tol(dtype))
    np.testing.assert_array_equal(both[0], np.asarray(kl_probs(p, q)))
    np.testing.assert_array_equal(both[1], np.asarray(kl_probs(q, p)))


def test_large_batch_of_logits_matches_references_and_gradients(dtype):
    rng = np.random.default_rng(29)
    zp = 2 * rng.standard_normal((300, 1000))
    zq = 2 * rng.standard_normal((300, 1000))
    for row, rel in zip(NEAR_ROWS, [1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-5]):
        zq[row] = zp[row] + rel * rng.standard_normal(1000)
    zp[2, :5] = -np.inf  # categories of zero probability under p
    zp, zq = jnp.asarray(zp, dtype), jnp.asarray(zq, dtype)

    def kl(a, b):
        return vikl.kl_divergence(vikl.Categorical(logits=a), vikl.Categorical(logits=b))

    if jax.default_backend() == "cpu":  # the row-block loop runs here
        assert "while(" in jax.jit(kl).lower(zp, zq).compile().as_text()
    got = np.asarray(kl(zp, zq))

    def mp_kl(a, b):
        la = [M(v) for v in a]
        lb = [M(v) for v in b]
        za, zb = mp.log(sum(mp.exp(v) for v in la)), mp.log(sum(mp.exp(v) for v in lb))
        return sum(mp.exp(x - za) * ((x - za) - (y - zb)) for x, y in zip(la, lb) if x != -mp.inf)

    _check(got[np.array(NEAR_ROWS)], [mp_kl(np.asarray(zp[i]), np.asarray(zq[i])) for i in NEAR_ROWS], dtype)
    far = np.setdiff1d(np.arange(300), NEAR_ROWS)
    lp = np.asarray(zp, np.float64) - scipy_logsumexp(np.asarray(zp, np.float64), axis=-1, keepdims=True)
    lq = np.asarray(zq, np.float64) - scipy_logsumexp(np.asarray(zq, np.float64), axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):  # -inf - (-inf) where p has zeros, masked below
        ref = np.where(np.isinf(lp), 0.0, np.exp(lp) * (lp - lq)).sum(-1)
    np.testing.assert_allclose(got[far], ref[far], rtol=tol(dtype))
    grads = jax.grad(lambda a, b: jnp.sum(kl(a, b)), argnums=(0, 1))(zp, zq)
    with jax.enable_x64(True):

        def textbook(a, b):  # float64 reference, 0 log 0 = 0
            la, lb = jax.nn.log_softmax(a, -1), jax.nn.log_softmax(b, -1)
            gone = jnp.isinf(la)
            return jnp.sum(jnp.where(gone, 0.0, jnp.exp(la) * jnp.where(gone, 0.0, la - lb)))

        args = (jnp.asarray(np.asarray(zp), jnp.float64), jnp.asarray(np.asarray(zq), jnp.float64))
        refs = [np.asarray(r) for r in jax.grad(textbook, argnums=(0, 1))(*args)]
    for g, r in zip(grads, refs):
        assert np.isfinite(np.asarray(g)).all()
        np.testing.assert_allclose(np.asarray(g, np.float64), r, rtol=tol(dtype) * 10, atol=tol(dtype))
