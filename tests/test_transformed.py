"""vikl.Transformed: densities, draws, closed forms and KLs against independent references.

References: SciPy's lognorm / norm / multivariate_normal, quadrature (scipy.integrate),
finite differences of the Gaussian KL for the gradient test, and Monte Carlo
within its standard error.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats

import vikl
from vikl import _constraints as constraints
from vikl.bijectors import Bijector

from .conftest import mc_tolerance, tol


# ----------------------------------------------------------------------------- stand-ins
# Small bijectors written here, independent of vikl.bijectors: a learnable elementwise
# affine map, a lower-triangular affine map and a sigmoid. The library's own versions are
# tested as well when they are present (see ``_bijectors``).
class _Affine(Bijector):
    """``y = shift + scale * x`` elementwise (learnable)."""

    shift: jax.Array = vikl.param(constraints.real)
    scale: jax.Array = vikl.param(constraints.positive)
    is_constant_jacobian = True
    is_elementwise = True

    def forward_and_log_det(self, x):
        y = self.shift + self.scale * x
        return y, jnp.broadcast_to(jnp.log(self.scale), y.shape)

    def inverse_and_log_det(self, y):
        x = (y - self.shift) / self.scale
        return x, jnp.broadcast_to(-jnp.log(self.scale), x.shape)


class _TriL(Bijector):
    """``y = shift + L x`` on vectors."""

    shift: jax.Array = vikl.param(constraints.real_vector)
    scale_tril: jax.Array = vikl.param(constraints.lower_cholesky)
    event_ndims_in = 1
    event_ndims_out = 1
    is_constant_jacobian = True

    def forward_and_log_det(self, x):
        y = self.shift + jnp.einsum("...ij,...j->...i", self.scale_tril, x)
        ld = jnp.sum(jnp.log(jnp.diagonal(self.scale_tril, axis1=-2, axis2=-1)), -1)
        return y, jnp.broadcast_to(ld, y.shape[:-1])

    def inverse_and_log_det(self, y):
        x = jax.scipy.linalg.solve_triangular(self.scale_tril, (y - self.shift)[..., None],
                                              lower=True)[..., 0]
        ld = jnp.sum(jnp.log(jnp.diagonal(self.scale_tril, axis1=-2, axis2=-1)), -1)
        return x, jnp.broadcast_to(-ld, x.shape[:-1])


class _Sigmoid(Bijector):
    is_elementwise = True

    def forward_and_log_det(self, x):
        return jax.nn.sigmoid(x), -jax.nn.softplus(-x) - jax.nn.softplus(x)

    def inverse_and_log_det(self, y):
        x = jnp.log(y) - jnp.log1p(-y)
        return x, -(-jax.nn.softplus(-x) - jax.nn.softplus(x))


def _bijectors(name, local):
    """The local stand-in, plus vikl.bijectors.<name> when it exists."""
    out = [local]
    lib = getattr(vikl.bijectors, name, None)
    if lib is not None:
        out.append(lib)
    return out


def _arr(x, dtype):
    return jnp.asarray(np.asarray(x, np.float64), dtype)


def _exp():
    return vikl.bijectors.Exp()


# ----------------------------------------------------------------------------- densities
def test_exp_normal_log_prob_matches_scipy_lognorm(dtype):
    m, s = 0.3, 0.7
    q = vikl.Transformed(vikl.Normal(_arr(m, dtype), _arr(s, dtype)), _exp())
    y = np.array([1e-3, 0.2, 1.0, 1.7, 30.0])
    got = np.asarray(q.log_prob(_arr(y, dtype)), np.float64)
    want = scipy.stats.lognorm(s, scale=np.exp(m)).logpdf(y)
    np.testing.assert_allclose(got, want, rtol=10 * tol(dtype), atol=10 * tol(dtype))
    assert q.log_prob(_arr(y, dtype)).dtype == dtype


def test_exp_normal_outside_support_is_minus_inf(dtype):
    q = vikl.Transformed(vikl.Normal(_arr(0.0, dtype), _arr(1.0, dtype)), _exp())
    lp = np.asarray(q.log_prob(_arr([-1.0, 0.0, np.inf], dtype)))
    assert np.all(lp == -np.inf)
    assert q.support is constraints.positive


@pytest.mark.parametrize("name, edges, outside", [
    ("Sigmoid", [0.0, 1.0], [-0.5, 1.5, np.nan]),
    ("Interval", [1.0, 3.0], [0.5, 3.5, np.nan]),
    ("GreaterThan", [1.0], [0.0, -np.inf, np.nan]),
])
def test_log_prob_is_minus_inf_on_and_off_the_image_edges(dtype, name, edges, outside):
    args = {"Sigmoid": (), "Interval": (1.0, 3.0), "GreaterThan": (1.0,)}[name]
    bij = getattr(vikl.bijectors, name)(*(_arr(a, dtype) for a in args))
    q = vikl.Transformed(vikl.Normal(_arr(0.0, dtype), _arr(1.0, dtype)), bij)
    lp = np.asarray(q.log_prob(_arr(edges + outside, dtype)))
    assert np.all(lp == -np.inf), lp
    g = jax.grad(lambda d: d.log_prob(_arr(2.0 if name != "Sigmoid" else 0.5, dtype)))(q)
    assert np.all(np.isfinite(np.asarray(g.base.loc)))


def test_mvn_exp_log_prob_matches_scipy(dtype):
    mu = np.array([0.2, -0.4, 1.0])
    a = np.array([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [-0.3, 0.2, 0.6]])
    cov = a @ a.T
    base = vikl.MultivariateNormal(_arr(mu, dtype), _arr(a, dtype))
    q = vikl.Transformed(base, _exp())
    assert q.event_shape == (3,) and q.batch_shape == ()
    y = np.exp(np.random.default_rng(0).normal(size=(5, 3)))
    want = scipy.stats.multivariate_normal(mu, cov).logpdf(np.log(y)) - np.log(y).sum(-1)
    got = np.asarray(q.log_prob(_arr(y, dtype)), np.float64)
    np.testing.assert_allclose(got, want, rtol=20 * tol(dtype))


@pytest.mark.parametrize("tril", _bijectors("AffineTriL", _TriL))
def test_mvn_affine_tril_log_prob_matches_scipy(dtype, tril):
    mu = np.array([0.5, -1.0])
    l0 = np.array([[1.2, 0.0], [0.3, 0.5]])
    b = np.array([1.0, 2.0])
    ell = np.array([[2.0, 0.0], [-0.7, 0.4]])
    q = vikl.Transformed(vikl.MultivariateNormal(_arr(mu, dtype), _arr(l0, dtype)),
                         tril(_arr(b, dtype), _arr(ell, dtype)))
    ref = scipy.stats.multivariate_normal(b + ell @ mu, ell @ l0 @ l0.T @ ell.T)
    y = np.random.default_rng(1).normal(size=(6, 2)) * 2.0
    got = np.asarray(q.log_prob(_arr(y, dtype)), np.float64)
    np.testing.assert_allclose(got, ref.logpdf(y), rtol=50 * tol(dtype))
    # mean: b + L mu
    np.testing.assert_allclose(np.asarray(q.mean, np.float64), b + ell @ mu, rtol=10 * tol(dtype))


@pytest.mark.parametrize("sigmoid", _bijectors("Sigmoid", _Sigmoid))
def test_logit_normal_normalizes_by_quadrature(dtype, sigmoid):
    q = vikl.Transformed(vikl.Normal(_arr(0.4, dtype), _arr(1.3, dtype)), sigmoid())
    f = jax.jit(lambda y: jnp.exp(q.log_prob(y)))
    eps = 1e-6 if dtype == np.float32 else 1e-12
    total, _ = scipy.integrate.quad(lambda y: float(f(_arr(y, dtype))), 0.0, 1.0, limit=200,
                                    epsabs=eps, epsrel=eps)
    assert abs(total - 1.0) < (1e-5 if dtype == np.float32 else 1e-9)
    # The logit-normal density itself, against SciPy's normal density of logit(y).
    y = np.array([1e-4, 0.1, 0.5, 0.9, 0.9999])
    logit = np.log(y) - np.log1p(-y)
    want = scipy.stats.norm(0.4, 1.3).logpdf(logit) - np.log(y) - np.log1p(-y)
    np.testing.assert_allclose(np.asarray(q.log_prob(_arr(y, dtype)), np.float64), want,
                               rtol=100 * tol(dtype))


# ----------------------------------------------------------------------------- draws
def test_sample_moments_match_scipy_lognorm(dtype):
    m, s, n = 0.2, 0.5, 200_000
    q = vikl.Transformed(vikl.Normal(_arr(m, dtype), _arr(s, dtype)), _exp())
    y = np.asarray(q.sample(jax.random.PRNGKey(1), (n,)), np.float64)
    ref = scipy.stats.lognorm(s, scale=np.exp(m))
    assert abs(y.mean() - ref.mean()) < mc_tolerance(y.std() / np.sqrt(n))
    sq = (y - ref.mean()) ** 2
    assert abs(sq.mean() - ref.var()) < mc_tolerance(sq.std() / np.sqrt(n))


def test_sample_and_log_prob_is_one_forward_pass_of_the_same_draws(dtype):
    base = vikl.MultivariateNormalDiag(_arr([0.0, 1.0], dtype), _arr([0.5, 2.0], dtype))
    q = vikl.Transformed(base, _exp())
    key = jax.random.PRNGKey(3)
    y, lp = q.sample_and_log_prob(key, (7,))
    np.testing.assert_array_equal(np.asarray(y), np.asarray(q.sample(key, (7,))))
    assert y.shape == (7, 2) and lp.shape == (7,)
    np.testing.assert_allclose(np.asarray(lp), np.asarray(q.log_prob(y)), rtol=50 * tol(dtype))
    y2, s = q._sample_and_stopped_log_prob(key, (7,))
    np.testing.assert_array_equal(np.asarray(y2), np.asarray(y))
    np.testing.assert_allclose(np.asarray(s), np.asarray(lp), rtol=50 * tol(dtype))


def test_bijector_batch_adds_leading_axes_with_independent_draws():
    base = vikl.Normal(0.0, 1.0)
    q = vikl.Transformed(base, _Affine(jnp.array([0.0, 10.0, 20.0]), jnp.ones(3)))
    assert q.batch_shape == (3,) and q.event_shape == ()
    y, lp = q.sample_and_log_prob(jax.random.PRNGKey(0), (4,))
    assert y.shape == (4, 3) and lp.shape == (4, 3)
    z = np.asarray(y) - np.array([0.0, 10.0, 20.0])
    assert not np.allclose(z[:, 0], z[:, 1])  # not one draw broadcast
    np.testing.assert_allclose(np.asarray(lp), np.asarray(q.log_prob(y)), rtol=1e-5)


# ----------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("affine", _bijectors("Affine", _Affine))
def test_entropy_mean_variance_of_affine_mvn_diag(dtype, affine):
    loc, sd = np.array([0.3, -1.0, 2.0]), np.array([0.5, 1.5, 0.2])
    shift, scale = np.array([1.0, 0.0, -2.0]), np.array([3.0, 0.1, 1.0])
    q = vikl.Transformed(vikl.MultivariateNormalDiag(_arr(loc, dtype), _arr(sd, dtype)),
                         affine(_arr(shift, dtype), _arr(scale, dtype)))
    ref = scipy.stats.multivariate_normal(shift + scale * loc, np.diag((scale * sd) ** 2))
    np.testing.assert_allclose(float(q.entropy()), ref.entropy(), rtol=10 * tol(dtype))
    np.testing.assert_allclose(np.asarray(q.mean, np.float64), ref.mean, rtol=10 * tol(dtype))
    np.testing.assert_allclose(np.asarray(q.variance, np.float64), np.diag(ref.cov),
                               rtol=10 * tol(dtype))


def test_entropy_mean_raise_without_closed_form():
    q = vikl.Transformed(vikl.Normal(0.0, 1.0), _exp())
    with pytest.raises(NotImplementedError, match="entropy"):
        q.entropy()
    with pytest.raises(NotImplementedError, match="mean"):
        _ = q.mean


# ----------------------------------------------------------------------------- KL
def test_kl_through_shared_bijector_equals_base_kl_and_monte_carlo(dtype):
    p0 = vikl.MultivariateNormal(_arr([0.0, 0.5], dtype), _arr([[1.0, 0.0], [0.4, 0.7]], dtype))
    q0 = vikl.MultivariateNormal(_arr([0.3, 0.0], dtype), _arr([[1.3, 0.0], [-0.2, 0.9]], dtype))
    p, q = vikl.Transformed(p0, _exp()), vikl.Transformed(q0, _exp())
    kl = float(vikl.kl_divergence(p, q))
    # scipy-free reference: KL of the Gaussians by Monte Carlo in log space is checked below;
    # here the Gaussian KL from its covariance matrices, computed in NumPy float64.
    m1, m2 = np.array([0.0, 0.5]), np.array([0.3, 0.0])
    l1, l2 = np.array([[1.0, 0.0], [0.4, 0.7]]), np.array([[1.3, 0.0], [-0.2, 0.9]])
    s1, s2 = l1 @ l1.T, l2 @ l2.T
    s2i = np.linalg.inv(s2)
    want = 0.5 * (np.trace(s2i @ s1) + (m2 - m1) @ s2i @ (m2 - m1) - 2
                  + np.log(np.linalg.det(s2) / np.linalg.det(s1)))
    np.testing.assert_allclose(kl, want, rtol=20 * tol(dtype))
    est = vikl.estimate_kl(p, q, jax.random.PRNGKey(0), num_samples=100_000)
    assert abs(float(est.value) - kl) < 4 * float(est.stderr)


def test_kl_lognormal_and_transformed_exp_normal_both_ways(dtype):
    t = vikl.Transformed(vikl.Normal(_arr(0.2, dtype), _arr(0.6, dtype)), _exp())
    ln = vikl.LogNormal(_arr(-0.5, dtype), _arr(1.4, dtype))

    def quad_kl(a, b):  # in log space: KL is invariant under the bijection
        pa, pb = scipy.stats.norm(*a), scipy.stats.norm(*b)
        return scipy.integrate.quad(lambda z: pa.pdf(z) * (pa.logpdf(z) - pb.logpdf(z)),
                                    -30, 30, epsabs=1e-13, epsrel=1e-13)[0]

    np.testing.assert_allclose(float(vikl.kl_divergence(t, ln)),
                               quad_kl((0.2, 0.6), (-0.5, 1.4)), rtol=20 * tol(dtype))
    np.testing.assert_allclose(float(vikl.kl_divergence(ln, t)),
                               quad_kl((-0.5, 1.4), (0.2, 0.6)), rtol=20 * tol(dtype))


def test_kl_with_different_bijectors_raises_pointing_to_estimate_kl():
    base = vikl.Normal(0.0, 1.0)
    with pytest.raises(NotImplementedError, match="estimate_kl"):
        vikl.kl_divergence(vikl.Transformed(base, _exp()),
                           vikl.Transformed(base, _Affine(0.0, 2.0)))
    with pytest.raises(NotImplementedError, match="estimate_kl"):
        vikl.kl_divergence(vikl.Transformed(base, _Affine(0.0, 2.0)),
                           vikl.Transformed(base, _Affine(0.0, 3.0)))
    with pytest.raises(NotImplementedError, match="Transformed\\(Normal, Exp\\)"):
        vikl.kl_divergence(vikl.Transformed(base, _Affine(0.0, 2.0)), vikl.LogNormal(0.0, 1.0))
    # Equal concrete parameters count as the same bijector.
    kl = vikl.kl_divergence(vikl.Transformed(base, _Affine(1.0, 2.0)),
                            vikl.Transformed(vikl.Normal(1.0, 1.0), _Affine(1.0, 2.0)))
    np.testing.assert_allclose(float(kl), 0.5, rtol=1e-6)


def test_kl_under_jit_with_parameter_free_and_shared_bijectors():
    f = jax.jit(lambda a, b: vikl.kl_divergence(vikl.Transformed(a, _exp()),
                                                vikl.Transformed(b, _exp())))
    np.testing.assert_allclose(float(f(vikl.Normal(0.0, 1.0), vikl.Normal(1.0, 1.0))), 0.5,
                               rtol=1e-6)

    @jax.jit
    def shared(bij):
        return vikl.kl_divergence(vikl.Transformed(vikl.Normal(0.0, 1.0), bij),
                                  vikl.Transformed(vikl.Normal(2.0, 1.0), bij))

    np.testing.assert_allclose(float(shared(_Affine(1.0, 3.0))), 2.0, rtol=1e-6)


# ----------------------------------------------------------------------------- gradients
def _gauss_kl(m1, s1, m2, s2):
    return np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


@pytest.mark.parametrize("gradient", ["stl", "reparam"])
def test_reverse_kl_gradient_estimators_are_unbiased(gradient):
    """q = Affine(b, c) # N(m, s) = N(b + c m, (c s)^2); target N(1, 2). Reference gradient:
    central finite differences of the Gaussian KL in float64."""
    theta = dict(m=0.3, s=0.8, b=-0.5, c=1.7)
    target = vikl.Normal(1.0, 2.0)
    obj = vikl.objectives.ReverseKL(num_samples=4096, gradient=gradient)

    def loss(th, key):
        q = vikl.Transformed(vikl.Normal(th["m"], th["s"]), _Affine(th["b"], th["c"]))
        return obj.loss_and_aux(q, target, key)[0]

    th = {k: jnp.asarray(v, jnp.float32) for k, v in theta.items()}
    keys = jax.random.split(jax.random.PRNGKey(0), 64)
    grads = jax.vmap(lambda k: jax.grad(loss)(th, k))(keys)

    def kl(t):
        return _gauss_kl(t["b"] + t["c"] * t["m"], t["c"] * t["s"], 1.0, 2.0)

    for name in theta:
        up, dn = dict(theta), dict(theta)
        up[name] += 1e-6
        dn[name] -= 1e-6
        want = (kl(up) - kl(dn)) / 2e-6
        g = np.asarray(grads[name], np.float64)
        se = g.std() / np.sqrt(len(g))
        assert abs(g.mean() - want) < 4 * se + 1e-4, (name, g.mean(), want, se)


@pytest.mark.parametrize("bij", [_exp, lambda: _Affine(0.5, 2.0)])
def test_stl_gradient_vanishes_at_the_optimum(bij):
    """Sticking the landing has zero variance when q = p: every draw's gradient is 0."""
    q = vikl.Transformed(vikl.Normal(0.2, 0.7), bij())
    target = q  # p = q exactly (as a separate object it would be the same numbers)
    obj = vikl.objectives.ReverseKL(num_samples=64, gradient="stl")
    g = jax.grad(lambda d: obj.loss_and_aux(d, target, jax.random.PRNGKey(1))[0])(q)
    for leaf in jax.tree_util.tree_leaves(g):
        assert np.all(np.abs(np.asarray(leaf)) < 1e-5)


def test_log_prob_jit_vmap_grad_match_eager():
    q = vikl.Transformed(vikl.Normal(0.3, 0.7), _exp())
    y = jnp.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(np.asarray(jax.jit(lambda d, v: d.log_prob(v))(q, y)),
                               np.asarray(q.log_prob(y)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(jax.vmap(q.log_prob)(y)), np.asarray(q.log_prob(y)),
                               rtol=1e-6)
    g = jax.grad(lambda d: d.log_prob(2.0))(q)
    z = (np.log(2.0) - 0.3) / 0.7  # d/dloc = z / s; d/dscale = (z^2 - 1) / s
    np.testing.assert_allclose(float(g.base.loc), z / 0.7, rtol=1e-5)
    np.testing.assert_allclose(float(g.base.scale), (z * z - 1) / 0.7, rtol=1e-5)


# ----------------------------------------------------------------------------- fitting
def test_fit_transformed_exp_normal_to_lognormal_reaches_exact_optimum():
    q0 = vikl.Transformed(vikl.Normal(0.0, 1.0), _exp())
    res = vikl.fit(q0, vikl.LogNormal(1.0, 0.5), num_steps=600, optimizer=0.05,
                   objective=vikl.objectives.ReverseKL(gradient="stl"),
                   key=jax.random.PRNGKey(0), progress=False)
    base = res.distribution.base
    assert isinstance(res.distribution, vikl.Transformed)
    assert abs(float(base.loc) - 1.0) < 0.01 and abs(float(base.scale) - 0.5) < 0.01


@pytest.mark.parametrize("affine", _bijectors("Affine", _Affine))
def test_fit_trains_a_learnable_affine_bijector(affine):
    """q = Affine(b, c) # N(m, s) fitted to N(2, 3): the push-forward N(b + c m, (c s)^2) is
    exact at the optimum (STL has zero variance there), and the bijector's scale moves."""
    q0 = vikl.Transformed(vikl.Normal(0.0, 1.0), affine(jnp.asarray(0.0), jnp.asarray(1.0)))
    res = vikl.fit(q0, vikl.Normal(2.0, 3.0), num_steps=400, optimizer=0.05,
                   objective=vikl.objectives.ReverseKL(gradient="stl"),
                   key=jax.random.PRNGKey(0), progress=False)
    d = res.distribution
    assert float(d.bijector.scale) > 1.3  # the bijector's own scale moved from 1
    mean = float(d.bijector.shift + d.bijector.scale * d.base.loc)
    sd = float(d.bijector.scale * d.base.scale)
    assert abs(mean - 2.0) < 1e-3 and abs(sd - 3.0) < 1e-3


# ----------------------------------------------------------------------------- bad input
def test_bad_input_errors_name_the_argument():
    with pytest.raises(TypeError, match="base must be a vikl.Distribution"):
        vikl.Transformed("normal", _exp())
    with pytest.raises(TypeError, match="bijector must be"):
        vikl.Transformed(vikl.Normal(0.0, 1.0), jnp.exp)
    with pytest.raises(ValueError, match="discrete"):
        vikl.Transformed(vikl.Poisson(3.0), _exp())
    with pytest.raises(ValueError, match="event axis"):
        vikl.Transformed(vikl.Normal(0.0, 1.0), _TriL(jnp.zeros(2), jnp.eye(2)))
    with pytest.raises(ValueError, match="batch shape"):
        vikl.Transformed(vikl.Normal(jnp.zeros(2), 1.0), _Affine(jnp.zeros(3), 1.0))
    with pytest.raises(ValueError, match="batch shape"):  # would expand the event axis
        vikl.Transformed(vikl.MultivariateNormalDiag(jnp.zeros(1), jnp.ones(1)),
                         _Affine(jnp.zeros(4), 1.0))


def test_mixture_base_is_stratified_so_weights_get_gradients():
    mix = vikl.Mixture(jnp.array([0.0, 0.0]),
                       vikl.Normal(jnp.array([-1.0, 1.0]), jnp.array([0.5, 0.5])))
    q = vikl.Transformed(mix, _exp())
    log_w, comps = q.strata()
    assert isinstance(comps, vikl.Transformed) and comps.batch_shape == (2,)
    target = vikl.LogNormal(1.0, 0.5)
    obj = vikl.objectives.ReverseKL(num_samples=256)
    g = jax.grad(lambda d: obj.loss_and_aux(d, target, jax.random.PRNGKey(0))[0])(q)
    gw = np.asarray(g.base.mixture_logits)
    # the component at +1 is closer to the target: moving weight to it (the direction
    # (-1, +1) in logits; Mixture keeps normalized logits) lowers the loss
    assert np.all(np.isfinite(gw)) and gw[1] - gw[0] < -1.0


def test_fit_result_save_load_round_trip(tmp_path):
    q0 = vikl.Transformed(vikl.Normal(0.0, 1.0), _Affine(0.0, 1.0))
    res = vikl.fit(q0, vikl.Normal(2.0, 3.0), num_steps=20, optimizer=0.05,
                   key=jax.random.PRNGKey(0), progress=False)
    res.save(tmp_path / "t.npz")
    back = vikl.FitResult.load(tmp_path / "t.npz").distribution
    assert isinstance(back, vikl.Transformed) and isinstance(back.bijector, _Affine)
    for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(res.distribution)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")  # corner behaviour
@pytest.mark.parametrize("name", ["StickBreaking", "SoftmaxCentered"])
def test_shape_changing_simplex_bijector_normalizes_by_quadrature(name):
    """MVN on R^2 pushed onto the 3-simplex: the density (w.r.t. the first two coordinates)
    integrates to 1 over the triangle (scipy dblquad, float64)."""
    bij = getattr(vikl.bijectors, name, None)
    if bij is None:
        pytest.skip(f"vikl.bijectors.{name} is not there yet")
    with jax.enable_x64(True):
        base = vikl.MultivariateNormalDiag(jnp.array([0.3, -0.2]), jnp.array([0.8, 1.1]))
        q = vikl.Transformed(base, bij())
        assert q.event_shape == (3,) and q.support is constraints.simplex
        f = jax.jit(lambda a, b: jnp.exp(q.log_prob(jnp.stack([a, b, 1.0 - a - b]))))
        total, _ = scipy.integrate.dblquad(lambda b, a: float(f(a, b)), 0.0, 1.0, 0.0,
                                           lambda a: 1.0 - a, epsabs=1e-7, epsrel=1e-7)
        assert abs(total - 1.0) < 1e-6
        y, lp = q.sample_and_log_prob(jax.random.PRNGKey(0), (5,))
        np.testing.assert_allclose(np.asarray(y.sum(-1)), 1.0, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(lp), np.asarray(q.log_prob(y)), rtol=1e-10)


def test_bijector_whose_parameters_do_not_fit_the_base_event_is_refused():
    base = vikl.MultivariateNormalDiag(jnp.zeros(3), jnp.ones(3))
    with pytest.raises(ValueError, match="cannot be applied to the base's draws"):
        vikl.Transformed(base, _TriL(jnp.zeros(2), jnp.eye(2)))
