"""Fitting targets with constrained support (ADVI): ``vikl.fit`` through the support's bijector.

References are independent of vikl: the reverse-KL optimum over Gaussians
``N(mu, sigma^2)`` in unconstrained space is found by ``scipy.optimize`` on
the exact ELBO computed by Gauss-Hermite quadrature of SciPy log densities
(plus the log-Jacobian written out by hand); forward-KL optima are the
moments of ``b^{-1}(X)`` from ``scipy.special`` (digamma / trigamma) or from
the data with NumPy. Tolerances: the fitted parameters of a stochastic fit
are noisy (Adam with a cosine-decayed rate and 256 draws per step); the
measured errors are ~0.005 and the tolerance 0.02 (0.03 for 2-D fits).
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy import optimize, special, stats

import vikl
from vikl._unconstrained import BijectorLayout, Unconstrained

_Z, _W = hermegauss(80)
_W = _W / np.sqrt(2 * np.pi)  # E_{z ~ N(0,1)} f(z) = sum_i w_i f(z_i)


def _opt(steps, lr=0.05):
    return optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.01))


_OPT_1D = _opt(1500)


def _fit(q0, target, steps=1500, optimizer=None, seed=0, **kw):
    return vikl.fit(q0, target, num_steps=steps, optimizer=optimizer or _OPT_1D, num_samples=256,
                    key=jax.random.key(seed), progress=False, **kw)


def _rkl_optimum_1d(log_pu, x0=(0.0, 0.0)):
    """argmax over (mu, sigma) of E_{N(mu, sigma^2)}[log p_u(u)] + log sigma (quadrature + scipy)."""
    def neg_elbo(th):
        return -(np.sum(_W * log_pu(th[0] + np.exp(th[1]) * _Z)) + th[1])

    res = optimize.minimize(neg_elbo, x0, method="Nelder-Mead",
                            options=dict(xatol=1e-10, fatol=1e-14, maxiter=5000))
    assert res.success
    return res.x[0], np.exp(res.x[1])


def _log_sigmoid(u):
    return -np.logaddexp(0.0, -u)


class _HandHalfCauchy:
    """A user-declared family (not a vikl Distribution): a half-Cauchy with ``support = positive``."""

    support = vikl.constraints.positive

    def log_prob(self, x):
        return jnp.log(2 / jnp.pi) - jnp.log1p(x * x)


def _numpyro_half_cauchy():
    dist = pytest.importorskip("numpyro.distributions")
    return dist.HalfCauchy(1.0)


# name -> (target factory, log p_u(u) by SciPy + hand-written log-Jacobian, exact optimum or None)
_ONE_D = {
    "gamma": (lambda: vikl.Gamma(2.0, 1.0),
              lambda u: stats.gamma.logpdf(np.exp(u), 2.0) + u,
              (np.log(2.0) - 0.25, np.sqrt(0.5))),  # E[e^u] closed form: mu = log(a/b) - 1/(2a), sigma^2 = 1/a
    "beta": (lambda: vikl.Beta(2.0, 5.0),
             lambda u: stats.beta.logpdf(special.expit(u), 2.0, 5.0) + _log_sigmoid(u) + _log_sigmoid(-u),
             None),
    "uniform": (lambda: vikl.Uniform(1.0, 3.0),
                lambda u: stats.uniform.logpdf(1 + 2 * special.expit(u), 1.0, 2.0) + np.log(2.0)
                + _log_sigmoid(u) + _log_sigmoid(-u),
                None),
    "halfcauchy_user": (_HandHalfCauchy,
                        lambda u: stats.halfcauchy.logpdf(np.exp(u)) + u, None),
    "halfcauchy_numpyro": (_numpyro_half_cauchy,
                           lambda u: stats.halfcauchy.logpdf(np.exp(u)) + u, None),
}


# ----------------------------------------------------------------------------- reverse KL
def test_gamma_reference_optimum_matches_closed_form():
    """The quadrature + scipy.optimize reference agrees with the closed-form Gamma optimum."""
    _, log_pu, exact = _ONE_D["gamma"]
    np.testing.assert_allclose(_rkl_optimum_1d(log_pu), exact, atol=1e-7)


@pytest.mark.parametrize("name", sorted(_ONE_D))
def test_reverse_kl_1d_matches_quadrature_optimum(name):
    make, log_pu, _ = _ONE_D[name]
    target = make()
    res = _fit(vikl.Normal(0.0, 1.0), target)
    mu, sigma = _rkl_optimum_1d(log_pu)
    q = res.unconstrained_distribution
    assert isinstance(res.layout, BijectorLayout)
    assert isinstance(res.distribution, vikl.Transformed)
    np.testing.assert_allclose([float(q.loc), float(q.scale)], [mu, sigma], atol=0.02)
    x = np.asarray(res.draws(jax.random.key(1), 20000))
    lo, hi = {"beta": (0, 1), "uniform": (1, 3)}.get(name, (0, np.inf))
    assert np.all((x > lo) & (x < hi))  # draws on the target's scale, inside its support
    assert np.isfinite(res.khat) and np.isfinite(res.ess)


def test_gamma_mean_field_float64_and_moments(dtype):
    """A batch of Gammas fitted by a mean-field q; push-forward moments vs the optimum's (quadrature)."""
    conc = np.array([2.0, 5.0])
    target = vikl.Gamma(jnp.asarray(conc, dtype), jnp.asarray([1.0, 3.0], dtype))
    q0 = vikl.families.mean_field(2, dtype=dtype)
    res = _fit(q0, target)
    q = res.unconstrained_distribution
    assert q.loc.dtype == dtype and res.draws(jax.random.key(2), 3).dtype == dtype
    mu = np.log(conc / np.array([1.0, 3.0])) - 1 / (2 * conc)  # exact reverse-KL optimum
    sigma = np.sqrt(1 / conc)
    np.testing.assert_allclose(np.asarray(q.loc), mu, atol=0.02)
    np.testing.assert_allclose(np.asarray(q.scale_diag), sigma, atol=0.02)
    # Push-forward mean: lognormal mean at the optimum exp(mu + sigma^2/2) = a/b exactly (the
    # reverse-KL optimum matches E[X]); its variance is larger than the Gamma's, a/b^2:
    # exp(1/a) - 1 vs 1/a relative -- the variational gap, stated here (0.65 vs 0.5 at a = 2).
    x = np.asarray(res.draws(jax.random.key(3), 200_000), np.float64)
    target_mean = conc / np.array([1.0, 3.0])
    np.testing.assert_allclose(x.mean(0), target_mean, rtol=0.03)
    gap_var = target_mean**2 * (np.exp(1 / conc) - 1)
    np.testing.assert_allclose(x.var(0), gap_var, rtol=0.1)


def test_lognormal_target_is_fitted_exactly():
    """LogNormal(m, s) through Exp is exactly N(m, s) in log space: the optimum is exact."""
    target = vikl.LogNormal(0.5, 0.8)
    res = _fit(vikl.Normal(0.0, 1.0), target, steps=1500,
               objective=vikl.objectives.ReverseKL(gradient="stl"))
    q = res.unconstrained_distribution
    np.testing.assert_allclose([float(q.loc), float(q.scale)], [0.5, 0.8], atol=2e-3)


def test_lognormal_exact_float64():
    with jax.enable_x64(True):
        target = vikl.LogNormal(jnp.float64(-1.0), jnp.float64(0.3))
        res = _fit(vikl.Normal(jnp.float64(0.0), jnp.float64(1.0)), target, steps=1500,
                   objective=vikl.objectives.ReverseKL(gradient="stl"))
        q = res.unconstrained_distribution
        assert q.loc.dtype == jnp.float64
        np.testing.assert_allclose([float(q.loc), float(q.scale)], [-1.0, 0.3], atol=1e-4)


def _dirichlet_log_pu(u, alpha):
    """log p_u for u in R^{K-1} (rows), x = softmax([u, 0]); log|det J| = sum_k log x_k."""
    full = np.concatenate([u, np.zeros(u.shape[:-1] + (1,))], axis=-1)
    logx = full - special.logsumexp(full, axis=-1, keepdims=True)
    return stats.dirichlet.logpdf(np.exp(logx).T, alpha) + logx.sum(-1)


def _dirichlet_rkl_optimum(alpha, full_rank):
    z1, z2 = np.meshgrid(_Z[::2], _Z[::2], indexing="ij")  # 40 x 40 tensor Gauss-Hermite
    wz = np.outer(_W[::2], _W[::2]).ravel()
    wz = wz / wz.sum()
    z = np.stack([z1.ravel(), z2.ravel()], -1)

    def unpack(th):
        low = th[3] if full_rank else 0.0
        return th[:2], np.array([[np.exp(th[2]), 0.0], [low, np.exp(th[-1])]])

    def neg_elbo(th):
        mu, L = unpack(th)
        return -(np.sum(wz * _dirichlet_log_pu(mu + z @ L.T, alpha)) + th[2] + th[-1])

    x0 = np.zeros(5 if full_rank else 4)
    res = optimize.minimize(neg_elbo, x0, method="BFGS", options=dict(gtol=1e-9))
    mu, L = unpack(res.x)
    full = np.concatenate([mu + z @ L.T, np.zeros((len(z), 1))], axis=-1)
    x = special.softmax(full, axis=-1)  # the optimum's push-forward, by quadrature
    mean = wz @ x
    return mu, L, mean, wz @ (x - mean) ** 2


@pytest.mark.parametrize("full_rank", [False, True])
def test_dirichlet_reverse_kl(full_rank):
    alpha = np.array([2.0, 3.0, 4.0])
    target = vikl.Dirichlet(jnp.asarray(alpha, jnp.float32))
    q0 = vikl.families.full_rank(2) if full_rank else vikl.families.mean_field(2)
    res = _fit(q0, target, steps=2000, optimizer=_opt(2000))
    mu, L, mean, var = _dirichlet_rkl_optimum(alpha, full_rank)
    q = res.unconstrained_distribution
    np.testing.assert_allclose(np.asarray(q.loc), mu, atol=0.03)
    cov = np.asarray(q.covariance_matrix) if full_rank else np.diag(np.asarray(q.scale_diag) ** 2)
    np.testing.assert_allclose(cov, L @ L.T, atol=0.03)
    # The variational gap, stated: the optimum's push-forward has the Dirichlet's mean exactly
    # (stationarity in mu: E_q[alpha - sum(alpha) x] = 0), but not its variance -- mean-field
    # (0.0207, 0.0255, 0.0183) and full-rank (0.0187, 0.0232, 0.0256) vs (0.0173, 0.0222, 0.0247).
    np.testing.assert_allclose(mean, stats.dirichlet.mean(alpha), atol=1e-6)
    np.testing.assert_allclose(var, stats.dirichlet.var(alpha), rtol=0.3)  # gap up to 26%
    x = np.asarray(res.draws(jax.random.key(4), 100_000), np.float64)
    assert x.shape == (100_000, 3)
    np.testing.assert_allclose(x.sum(-1), 1.0, atol=1e-5)
    # Draws vs the optimum's moments: MC error (sd / sqrt(n) ~ 5e-4) + the fit's error (~0.004 in u).
    np.testing.assert_allclose(x.mean(0), mean, atol=0.004)
    np.testing.assert_allclose(x.var(0), var, rtol=0.08)


# ----------------------------------------------------------------------------- forward KL
@pytest.mark.slow  # compiles the Gamma/Beta rejection samplers inside the fit
@pytest.mark.parametrize("name", ["gamma", "beta"])
def test_forward_kl_from_target_samples(name):
    """Forward KL from the target's samples: the optimum is the moments of b^{-1}(X) (scipy.special)."""
    if name == "gamma":
        target, a = vikl.Gamma(3.0, 2.0), 3.0
        mu, var = special.digamma(a) - np.log(2.0), special.polygamma(1, a)
    else:
        target = vikl.Beta(2.0, 5.0)
        mu = special.digamma(2.0) - special.digamma(5.0)
        var = special.polygamma(1, 2.0) + special.polygamma(1, 5.0)
    res = _fit(vikl.Normal(0.0, 1.0), target, objective="forward_kl")
    q = res.unconstrained_distribution
    np.testing.assert_allclose([float(q.loc), float(q.scale)], [mu, np.sqrt(var)], atol=0.03)


@pytest.mark.slow  # compiles the Dirichlet sampler inside the fit
def test_forward_kl_dirichlet_full_rank():
    alpha = np.array([2.0, 3.0, 4.0])
    res = _fit(vikl.families.full_rank(2), vikl.Dirichlet(jnp.asarray(alpha, jnp.float32)),
               objective="forward_kl", steps=2000, optimizer=_opt(2000))
    q = res.unconstrained_distribution
    mu = special.digamma(alpha[:2]) - special.digamma(alpha[2])  # u_i = log x_i - log x_K
    cov = np.diag(special.polygamma(1, alpha[:2])) + special.polygamma(1, alpha[2])
    np.testing.assert_allclose(np.asarray(q.loc), mu, atol=0.03)
    np.testing.assert_allclose(np.asarray(q.covariance_matrix), cov, atol=0.05)


def test_forward_kl_from_empirical_data(dtype):
    """Empirical samples of a positive quantity + an explicit bijector: the MLE of log-data moments."""
    x = np.random.default_rng(0).gamma(2.0, 1.5, size=500)
    data = vikl.unconstrained(vikl.Empirical(jnp.asarray(x, dtype)), bijector=vikl.bijectors.Exp())
    res = vikl.fit(vikl.Normal(jnp.asarray(0.0, dtype), jnp.asarray(1.0, dtype)), data,
                   objective="forward_kl", optimizer=_opt(1000, 0.05), num_steps=1000,
                   key=jax.random.key(0), progress=False)
    q = res.unconstrained_distribution
    np.testing.assert_allclose([float(q.loc), float(q.scale)],
                               [np.log(x).mean(), np.log(x).std()], atol=2e-3)
    assert np.all(np.asarray(res.draws(jax.random.key(1), 100)) > 0)


# ----------------------------------------------------------------------------- what fit chooses
@pytest.mark.slow  # compiles the Gamma sampler's implicit gradient
def test_gamma_q_on_a_gamma_target_is_fitted_directly():
    res = _fit(vikl.Gamma(1.0, 1.0), vikl.Gamma(2.0, 3.0), steps=50)
    assert res.layout is None and isinstance(res.distribution, vikl.Gamma)
    assert res.unconstrained_distribution is res.distribution


def test_q_on_the_target_support_is_fitted_directly():
    q0 = vikl.Transformed(vikl.Normal(0.0, 1.0), vikl.bijectors.Exp())
    res = _fit(q0, vikl.Gamma(2.0, 3.0), steps=50)
    assert res.layout is None and isinstance(res.distribution, vikl.Transformed)


def test_real_support_target_is_unchanged():
    """A target on R is not wrapped: no layout, draws are the distribution's own."""
    res = _fit(vikl.Normal(0.0, 1.0), vikl.Normal(1.0, 2.0), steps=20)
    assert res.layout is None and isinstance(res.distribution, vikl.Normal)
    np.testing.assert_array_equal(res.draws(jax.random.key(0), 5),
                                  res.distribution.sample(jax.random.key(0), (5,)))


def test_explicit_view_equals_automatic():
    target = vikl.Gamma(2.0, 1.0)
    auto = _fit(vikl.Normal(0.0, 1.0), target, steps=30)
    view = vikl.unconstrained(target)
    assert isinstance(view, Unconstrained) and view.event_shape == ()
    explicit = _fit(vikl.Normal(0.0, 1.0), view, steps=30)
    np.testing.assert_array_equal(auto.losses, explicit.losses)


def test_unconstrained_log_prob_against_scipy():
    view = vikl.unconstrained(vikl.Beta(2.0, 5.0))
    u = np.linspace(-8.0, 8.0, 9)
    ref = _ONE_D["beta"][1](u)
    np.testing.assert_allclose(np.asarray(view.log_prob(jnp.asarray(u, jnp.float32))), ref, rtol=2e-5,
                               atol=2e-5)


def test_callable_target_with_bijector():
    log_p = lambda x: jnp.log(x) - x  # noqa: E731 -- Gamma(2, 1), unnormalized
    res = _fit(vikl.Normal(0.0, 1.0), vikl.unconstrained(log_p, bijector=vikl.bijectors.Exp()))
    q = res.unconstrained_distribution
    np.testing.assert_allclose([float(q.loc), float(q.scale)], _ONE_D["gamma"][2], atol=0.02)


def test_batched_restarts_and_targets():
    res = _fit([vikl.Normal(0.0, 1.0), vikl.Normal(1.0, 0.5)], vikl.Gamma(2.0, 1.0), steps=200)
    assert res.batch_size == 2 and res.draws(jax.random.key(0), 7).shape == (2, 7)
    one = res[1]
    assert isinstance(one.distribution, vikl.Transformed) and one.draws(jax.random.key(0), 3).shape == (3,)
    res = _fit(vikl.Normal(0.0, 1.0), [vikl.Uniform(0.0, 1.0), vikl.Uniform(2.0, 5.0)], steps=200)
    x = np.asarray(res.draws(jax.random.key(0), 1000))
    assert x.shape == (2, 1000)
    assert (x[0] > 0).all() and (x[0] < 1).all() and (x[1] > 2).all() and (x[1] < 5).all()
    assert (np.asarray(res[1].distribution.sample(jax.random.key(1), (100,))) > 2).all()


def test_continuation_is_bit_identical():
    target = vikl.Gamma(2.0, 1.0)
    opt = optax.adam(0.02)
    full = _fit(vikl.Normal(0.0, 1.0), target, steps=60, optimizer=opt)
    half = _fit(vikl.Normal(0.0, 1.0), target, steps=30, optimizer=opt)
    more = vikl.fit(half, target, num_steps=30, progress=False)
    np.testing.assert_array_equal(full.losses, more.losses)
    np.testing.assert_array_equal(full.unconstrained_distribution.loc, more.unconstrained_distribution.loc)


# ----------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("batched", [False, True])
def test_save_load_constrained_fit(tmp_path, batched):
    q0 = [vikl.Normal(0.0, 1.0)] * 2 if batched else vikl.Normal(0.0, 1.0)
    target = vikl.Uniform(1.0, 3.0)
    res = _fit(q0, target, steps=40, optimizer=optax.adam(0.02))
    path = tmp_path / "fit.npz"
    res.save(path)
    loaded = vikl.FitResult.load(path)
    assert isinstance(loaded.layout, BijectorLayout)
    assert isinstance(loaded.layout.bijector, vikl.bijectors.Interval)
    assert isinstance(loaded.distribution, vikl.Transformed)
    key = jax.random.key(5)
    np.testing.assert_array_equal(loaded.draws(key, 50), res.draws(key, 50))
    np.testing.assert_array_equal(loaded.unconstrained_distribution.loc, res.unconstrained_distribution.loc)
    if not batched:
        np.testing.assert_array_equal(loaded.distribution.sample(key, (5,)), res.distribution.sample(key, (5,)))
    more = vikl.fit(loaded, target, num_steps=10, optimizer=optax.adam(0.02), progress=False)
    ref = vikl.fit(res, target, num_steps=10, optimizer=optax.adam(0.02), progress=False)
    np.testing.assert_array_equal(more.losses, ref.losses)


def test_plain_results_keep_format_version_1(tmp_path):
    res = _fit(vikl.Normal(0.0, 1.0), vikl.Normal(1.0, 2.0), steps=5)
    res.save(tmp_path / "a.npz")
    with np.load(tmp_path / "a.npz") as z:
        meta = json.loads(str(z["__vikl_metadata__"]))
    assert meta["version"] == 1 and "layout" not in meta


def test_load_refuses_a_layout_that_is_not_a_module(tmp_path):
    res = _fit(vikl.Normal(0.0, 1.0), vikl.Gamma(2.0, 1.0), steps=5)
    res.save(tmp_path / "a.npz")
    with np.load(tmp_path / "a.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["__vikl_metadata__"]))
    assert meta["version"] == 2
    meta["layout"] = {"module": "vikl._distributions.normal:Normal", "fields": {}}
    arrays["__vikl_metadata__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "b.npz", **arrays)
    with pytest.raises(ValueError, match="not a vikl Module"):
        vikl.FitResult.load(tmp_path / "b.npz")


# ----------------------------------------------------------------------------- bad input
def test_discrete_support_is_refused():
    with pytest.raises(ValueError, match="nonnegative_integer.*discrete"):
        _fit(vikl.Normal(0.0, 1.0), vikl.Poisson(3.0), steps=1)


def test_unknown_support_is_refused_with_a_pointer():
    class Odd(vikl.constraints.Constraint):
        name = "odd_set"

    class Target:
        support = Odd()

        def log_prob(self, x):
            return -x * x

    with pytest.raises(ValueError, match=r"odd_set.*vikl\.unconstrained\(target, bijector="):
        _fit(vikl.Normal(0.0, 1.0), Target(), steps=1)


def test_unrecognized_support_object_is_refused():
    class Target:
        support = "positive"

        def log_prob(self, x):
            return -x

    with pytest.raises(ValueError, match="support='positive'.*neither a vikl constraint"):
        _fit(vikl.Normal(0.0, 1.0), Target(), steps=1)


def test_a_constrained_q0_is_fitted_directly_whatever_the_constraint_object():
    # unit_interval vs interval(0, 1), vikl positive vs NumPyro's, positive_vector vs positive:
    # the same sets written differently; a q0 with a support of its own is fitted as written.
    numpyro_dist = pytest.importorskip("numpyro.distributions")
    cases = [
        (vikl.Beta(2.0, 2.0), vikl.Uniform(0.0, 1.0)),
        (vikl.Gamma(jnp.ones(2), jnp.ones(2)), numpyro_dist.Gamma(jnp.array([2.0, 3.0]), 1.0)),
        (vikl.Transformed(vikl.MultivariateNormalDiag(jnp.zeros(2), jnp.ones(2)), vikl.bijectors.Exp()),
         vikl.Gamma(jnp.array([2.0, 3.0]), 1.0)),
    ]
    for q0, target in cases:
        res = _fit(q0, target, steps=2)
        assert res.layout is None
        assert type(res.distribution) is type(q0)


def test_a_transformed_q_of_a_constrained_base_is_not_taken_for_unconstrained():
    q0 = vikl.Transformed(vikl.Gamma(2.0, 1.0), vikl.bijectors.Affine(0.0, 2.0))
    assert q0.support.name not in ("real", "real_vector")
    res = _fit(q0, vikl.Gamma(2.0, 0.5), steps=2)
    assert res.layout is None and type(res.distribution) is vikl.Transformed
    assert type(res.distribution.base) is vikl.Gamma


def test_q0_point_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match=r"point shape \(3,\).*SoftmaxCentered.*\(2,\)"):
        _fit(vikl.families.mean_field(3), vikl.Dirichlet(jnp.ones(3)), steps=1)


def test_unconstrained_bad_arguments():
    with pytest.raises(TypeError, match="bijector must be a vikl.bijectors.Bijector"):
        vikl.unconstrained(vikl.Gamma(2.0, 1.0), bijector="exp")
    with pytest.raises(ValueError, match="declares no support.*bijector="):
        vikl.unconstrained(lambda x: -x * x)
    with pytest.raises(ValueError, match="Empirical sample.*non-finite"):
        vikl.unconstrained(vikl.Empirical(jnp.array([1.0, 0.0, 2.0])), bijector=vikl.bijectors.Exp())
    with pytest.raises(TypeError, match="target must be"):
        vikl.unconstrained(3.0, bijector=vikl.bijectors.Exp())


def test_draws_bad_n():
    res = _fit(vikl.Normal(0.0, 1.0), vikl.Gamma(2.0, 1.0), steps=2)
    with pytest.raises(ValueError, match="n"):
        res.draws(jax.random.key(0), -1)
