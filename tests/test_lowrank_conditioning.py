"""Low-rank Gaussians whose diagonal is small next to ``W W^T`` (issue 19, item 1), and
the symmetry tolerance of covariance/precision matrices (issue 19, item 17).

References are independent of vikl's formulas: mpmath at 40 digits on the dense
covariances ``W W^T + diag(D)`` built from the exact (rounded-to-dtype) inputs.
"""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import vikl

D = 5


def _mp_cov(w, dg):
    with mpmath.workdps(40):  # W W^T + diag(dg) exactly enough: dg may be 1e-14 |W|^2
        m = mpmath.matrix(np.asarray(w, np.float64).tolist())
        m = m * m.T
        for i in range(len(dg)):
            m[i, i] += mpmath.mpf(float(dg[i]))
        return m


def _mp_kl(m1, s1, m2, s2):
    with mpmath.workdps(40):
        qi = s2**-1
        dm = mpmath.matrix((np.asarray(m1, np.float64) - np.asarray(m2, np.float64)).tolist())
        tr = mpmath.fsum((qi * s1)[i, i] for i in range(s1.rows))
        return float((tr - s1.rows + mpmath.log(mpmath.det(s2)) - mpmath.log(mpmath.det(s1)) + (dm.T * qi * dm)[0]) / 2)


def _mp_log_prob(m, s, x):
    with mpmath.workdps(40):
        dm = mpmath.matrix((np.asarray(x, np.float64) - np.asarray(m, np.float64)).tolist())
        quad = (dm.T * s**-1 * dm)[0]
        return float(-(quad + mpmath.log(mpmath.det(s)) + s.rows * mpmath.log(2 * mpmath.pi)) / 2)


def _mp_entropy(s):
    with mpmath.workdps(40):
        return float((s.rows * (1 + mpmath.log(2 * mpmath.pi)) + mpmath.log(mpmath.det(s))) / 2)


def _rounded(x, dtype):
    """``x`` rounded to ``dtype`` and back to float64: the exact input vikl sees."""
    return np.asarray(x).astype(dtype).astype(np.float64)


def _lowrank(rng, r, dg, dtype, rank_one=False):
    """``(dist, loc, mp_cov)``; ``rank_one`` makes every column of W a multiple of the first."""
    w = rng.standard_normal((D, r))
    if rank_one:
        w[:, 1:] = w[:, :1] * rng.uniform(0.5, 2.0, size=r - 1)
    w, loc, diag = _rounded(w, dtype), _rounded(0.1 * rng.standard_normal(D), dtype), _rounded(np.full(D, dg), dtype)
    dist = vikl.LowRankMultivariateNormal(jnp.asarray(loc, dtype), jnp.asarray(w, dtype), jnp.asarray(diag, dtype))
    return dist, loc, _mp_cov(w, diag)


def _other(kind, rng, dtype):
    """A well-conditioned diagonal or full-rank Normal: ``(dist, loc, mp_cov)``."""
    loc = _rounded(0.1 * rng.standard_normal(D), dtype)
    if kind == "diag":
        sd = _rounded(rng.uniform(0.5, 2.0, size=D), dtype)
        return vikl.MultivariateNormalDiag(jnp.asarray(loc, dtype), jnp.asarray(sd, dtype)), loc, _mp_cov(np.zeros((D, 1)), sd**2)
    tril = _rounded(np.tril(rng.standard_normal((D, D)), -1) + np.diag(rng.uniform(0.5, 2.0, size=D)), dtype)
    with mpmath.workdps(40):
        m = mpmath.matrix(tril.tolist())
        m = m * m.T
    return vikl.MultivariateNormal(jnp.asarray(loc, dtype), scale_tril=jnp.asarray(tril, dtype)), loc, m


def _finite_grads(fn, dist):
    g = jax.grad(fn)(dist)
    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(g))


def test_issue_reproducer_rank_above_dim(dtype):
    """d = 5, rank 50, cov_diag = 1e-6 (float32) / 1e-14 (float64): Sigma has condition
    number ~3, yet the capacitance forms gave KL 8.0 for 0.426 and NaN entropy/log_prob."""
    dg = 1e-6 if dtype == np.float32 else 1e-14
    rng = np.random.default_rng(0)
    p, mp_, sp = _lowrank(rng, 50, dg, dtype)
    q, mq, sq = _lowrank(rng, 50, dg, dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-11
    ref = _mp_kl(mp_, sp, mq, sq)
    assert abs(float(vikl.kl_divergence(p, q)) - ref) <= rtol * ref
    assert abs(float(p.entropy()) - _mp_entropy(sp)) <= rtol * abs(_mp_entropy(sp))
    x = np.asarray(p.sample(jax.random.PRNGKey(1), (3,)))
    for xi in x:
        ref_lp = _mp_log_prob(mp_, sp, _rounded(xi, dtype))
        assert abs(float(p.log_prob(jnp.asarray(xi))) - ref_lp) <= rtol * abs(ref_lp)
    assert abs(float(vikl.kl_divergence(p, p))) <= 10 * np.finfo(dtype).eps
    # the same covariance as a full-rank Normal gives the same KL
    full = vikl.MultivariateNormal(q.loc, covariance_matrix=q.covariance_matrix)
    assert abs(float(vikl.kl_divergence(p, full)) - ref) <= 10 * rtol * ref
    assert _finite_grads(lambda d: vikl.kl_divergence(d, q) + d.entropy() + jnp.sum(d.log_prob(jnp.asarray(x))), p)


# (rank, rank_one factor): full-rank factors of rank < d, = d and > d, and rank-one factors
# (Sigma itself then ill conditioned, cond ~ |W|^2 / cov_diag).
CASES = [(2, False), (4, False), (5, False), (50, False), (2, True), (4, True)]
PAIRS = ["lr-lr", "lr-lr2", "lr-full", "full-lr", "lr-diag", "diag-lr"]


@pytest.mark.parametrize("level", [0, 1, 2])
@pytest.mark.parametrize("rank,rank_one", CASES)
def test_small_diagonal_family_against_mpmath(rank, rank_one, level, dtype):
    """Values of every low-rank method and KL pair against mpmath (see _check_family)."""
    _check_family(rank, rank_one, level, dtype, grads=False)


def _check_family(rank, rank_one, level, dtype, grads):
    """Every low-rank method and KL pair, for diagonals 1e4 to 1e10 (float32) or 1e4 to
    1e14 (float64) times smaller than the factor: relative error of KL, entropy and
    log_prob against mpmath, KL(p, p) = 0, finite gradients. Before the fix these gave NaN
    or wrong numbers (rank 50: NaN everywhere at 1e-6; rank-one factors at 1e-10: NaN for
    every pair; rank 4 rank-one at 1e-6 in float32: KL(p, p) = 1.0)."""
    dg = ([1e-4, 1e-6, 1e-10] if dtype == np.float32 else [1e-4, 1e-8, 1e-14])[level]
    # Measured worst relative KL errors: float32 7e-7, but 3e-4 where Sigma's condition
    # number (~|W|^2 / cov_diag with a rank-one W) reaches 1e11 >> 1 / eps; float64 2e-15.
    if dtype == np.float32:
        rtol_kl = 1e-3 if (rank_one and level == 2) else 3e-6
    else:
        rtol_kl = 1e-13
    rng = np.random.default_rng(rank + 10 * rank_one)
    p, mp_, sp = _lowrank(rng, rank, dg, dtype, rank_one)
    for pair in PAIRS:
        if pair in ("lr-lr", "lr-lr2"):
            q, mq, sq = _lowrank(rng, rank if pair == "lr-lr" else 2, dg, dtype, rank_one and pair == "lr-lr")
            a, b, ma, mb, sa, sb = p, q, mp_, mq, sp, sq
        else:
            o, mo, so = _other(pair.split("-")[1 if pair.startswith("lr") else 0], rng, dtype)
            a, b, ma, mb, sa, sb = (p, o, mp_, mo, sp, so) if pair.startswith("lr") else (o, p, mo, mp_, so, sp)
        got, ref = float(vikl.kl_divergence(a, b)), _mp_kl(ma, sa, mb, sb)
        assert abs(got - ref) <= rtol_kl * ref, (pair, dg, got, ref)
        if grads and pair in ("lr-lr", "full-lr", "lr-diag"):
            assert _finite_grads(lambda d, b=b: vikl.kl_divergence(d, b), a), (pair, dg)
            assert _finite_grads(lambda d, a=a: vikl.kl_divergence(a, d), b), (pair, dg)
    assert abs(float(vikl.kl_divergence(p, p))) <= 10 * np.finfo(dtype).eps, dg
    ent = _mp_entropy(sp)
    assert abs(float(p.entropy()) - ent) <= (1e-4 if dtype == np.float32 else 1e-12) * max(abs(ent), 1.0), dg
    x = np.asarray(p.sample(jax.random.PRNGKey(2)))
    lp = _mp_log_prob(mp_, sp, _rounded(x, dtype))
    # At a point of p, y = (x - loc) / sqrt(cov_diag) has |y| ~ |W| / sqrt(cov_diag), and
    # the residual of the least-squares form is accurate to about eps |y| (the rounding of
    # x itself moves log_prob that much). Measured: float32 2e-2 at 1e-10, float64 3e-9.
    tol_lp = 20 * np.finfo(dtype).eps * np.sqrt(50.0 / dg) * max(abs(lp), 1.0)
    assert abs(float(p.log_prob(jnp.asarray(x))) - lp) <= tol_lp, (dg, float(p.log_prob(jnp.asarray(x))), lp)
    if grads:
        assert _finite_grads(lambda d: d.entropy() + d.log_prob(jnp.asarray(x)), p), dg


@pytest.mark.slow
@pytest.mark.parametrize("rank,rank_one", CASES)
def test_small_diagonal_family_gradients_finite(rank, rank_one, dtype):
    """Finite gradients of KL (three pairs, both arguments), entropy and log_prob at the
    smallest diagonal of the family above (slow: eager gradients of every case)."""
    _check_family(rank, rank_one, 2, dtype, grads=True)


def test_entropy_gradient_against_mpmath(dtype):
    """d entropy / d cov_diag_i = (Sigma^-1)_ii / 2 and d / dW = Sigma^-1 W, rank 50 > d
    with a tiny diagonal (Sigma well conditioned), and rank 2 < d."""
    for rank, dg in [(50, 1e-6 if dtype == np.float32 else 1e-14), (2, 1e-4)]:
        p, _, sp = _lowrank(np.random.default_rng(3), rank, dg, dtype)
        g = jax.grad(lambda d: d.entropy())(p)
        with mpmath.workdps(40):
            inv = sp**-1
            ref_diag = np.array([float(inv[i, i] / 2) for i in range(D)])
            ref_w = np.array((inv * mpmath.matrix(np.asarray(p.cov_factor, np.float64).tolist())).tolist(), np.float64)
        rtol = 1e-4 if dtype == np.float32 else 1e-9
        np.testing.assert_allclose(np.asarray(g.cov_factor, np.float64), ref_w, rtol=rtol, atol=rtol * np.abs(ref_w).max())
        if rank > D:  # else the diagonal's gradient is ~1/cov_diag, known to eps * cond only
            np.testing.assert_allclose(np.asarray(g.cov_diag, np.float64), ref_diag, rtol=rtol)


def test_precision_matrix_from_inverse_is_accepted(dtype):
    """A precision matrix from np.linalg.inv of a covariance with condition number 1e5
    (float64) is symmetric only to ~5e3 eps; it was rejected as "not symmetric"."""
    rng = np.random.default_rng(4)
    d = 6
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    cond = 1e5 if dtype == np.float64 else 1e3
    cov = (basis * np.geomspace(1.0, 1 / cond, d)) @ basis.T
    cov = ((cov + cov.T) / 2).astype(dtype)
    prec = np.linalg.inv(cov.astype(np.float64)).astype(dtype)
    if dtype == np.float64:
        prec = np.linalg.inv(cov)
        asym = np.abs(prec - prec.T).max()
        assert asym > 100 * np.finfo(dtype).eps * np.abs(prec).max()  # the old bound rejected it
    mvn = vikl.MultivariateNormal(np.zeros(d, dtype), precision_matrix=prec)
    rtol = 1e-9 if dtype == np.float64 else 1e-3
    got = np.asarray(mvn.covariance_matrix, np.float64)
    assert np.abs(got - cov).max() <= rtol * cond * np.abs(cov).max()
    # a matrix that is not symmetric is still rejected, naming the argument and the tolerance
    bad = prec.copy()
    bad[0, 1] *= 1.01
    with pytest.raises(ValueError, match=r"precision_matrix must be symmetric.*relative"):
        vikl.MultivariateNormal(np.zeros(d, dtype), precision_matrix=bad)
    with pytest.raises(ValueError, match="covariance_matrix must be symmetric"):
        vikl.MultivariateNormal(np.zeros(2, dtype), covariance_matrix=np.array([[1.0, 0.5], [0.0, 1.0]], dtype))


def test_lowrank_fit_with_shrinking_diagonal_stays_finite():
    """A rank-6 fit in 3 dimensions to a Gaussian whose covariance the factor alone can
    match: the diagonal shrinks freely. It starts at cov_diag = 1e-6 and must stay finite
    and reach the target (reverse KL against the closed form)."""
    d, r = 3, 6
    rng = np.random.default_rng(5)
    a = rng.standard_normal((d, d)).astype(np.float32)
    target = vikl.MultivariateNormal(jnp.ones(d), covariance_matrix=jnp.asarray(a @ a.T + np.eye(d, dtype=np.float32)))
    q0 = vikl.LowRankMultivariateNormal(
        jnp.zeros(d), jnp.asarray(0.5 * rng.standard_normal((d, r)), jnp.float32), jnp.full((d,), 1e-6, jnp.float32)
    )
    res = vikl.fit(q0, target, num_steps=300, optimizer=0.05, key=jax.random.PRNGKey(0), progress=False)
    q = res.distribution
    for leaf in jax.tree_util.tree_leaves(q):
        assert np.all(np.isfinite(np.asarray(leaf)))
    kl0, kl = float(vikl.kl_divergence(q0, target)), float(vikl.kl_divergence(q, target))
    assert np.isfinite(kl) and kl < 0.1 * kl0, (kl0, kl)
