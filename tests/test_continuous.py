"""Scalar continuous families: densities, moments, entropies and sampling vs SciPy / torch."""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import scipy.stats as st

import vikl
from tests.conftest import mc_tolerance, tol

# name -> (vikl class, parameters (batch of 3), SciPy frozen distribution from float64 parameters,
#          points (some outside the support))
FAMILIES = {
    "Laplace": (
        vikl.Laplace,
        dict(loc=[-1.0, 0.5, 3.0], scale=[0.3, 1.0, 4.0]),
        lambda p: st.laplace(p["loc"], p["scale"]),
        [-2.0, 0.4, 7.0],
    ),
    "StudentT": (
        vikl.StudentT,
        dict(df=[0.7, 3.0, 40.0], loc=[-1.0, 0.5, 3.0], scale=[0.3, 1.0, 4.0]),
        lambda p: st.t(p["df"], p["loc"], p["scale"]),
        [-2.0, 0.4, 7.0],
    ),
    "Cauchy": (
        vikl.Cauchy,
        dict(loc=[-1.0, 0.5, 3.0], scale=[0.3, 1.0, 4.0]),
        lambda p: st.cauchy(p["loc"], p["scale"]),
        [-50.0, 0.4, 7.0],
    ),
    "Exponential": (
        vikl.Exponential,
        dict(rate=[0.3, 1.0, 4.0]),
        lambda p: st.expon(scale=1 / p["rate"]),
        [-1.0, 0.0, 0.4, 7.0],
    ),
    "Gamma": (
        vikl.Gamma,
        dict(concentration=[0.5, 1.0, 7.5], rate=[0.3, 2.0, 4.0]),
        lambda p: st.gamma(p["concentration"], scale=1 / p["rate"]),
        [-1.0, 1e-3, 0.4, 7.0],
    ),
    "Beta": (
        vikl.Beta,
        dict(concentration1=[0.5, 1.0, 7.5], concentration0=[2.0, 1.0, 0.8]),
        lambda p: st.beta(p["concentration1"], p["concentration0"]),
        [-0.5, 0.01, 0.4, 0.97, 1.5],
    ),
    "Uniform": (
        vikl.Uniform,
        dict(low=[-1.0, 0.0, 2.0], high=[0.5, 1.0, 6.0]),
        lambda p: st.uniform(p["low"], p["high"] - p["low"]),
        [-2.0, 0.25, 0.7, 3.0, 7.0],
    ),
    "LogNormal": (
        vikl.LogNormal,
        dict(loc=[-1.0, 0.0, 1.5], scale=[0.3, 1.0, 2.0]),
        lambda p: st.lognorm(p["scale"], scale=np.exp(p["loc"])),
        [-1.0, 0.0, 0.4, 7.0],
    ),
    "HalfNormal": (
        vikl.HalfNormal,
        dict(scale=[0.3, 1.0, 4.0]),
        lambda p: st.halfnorm(scale=p["scale"]),
        [-1.0, 0.0, 0.4, 7.0],
    ),
    "Gumbel": (
        vikl.Gumbel,
        dict(loc=[-1.0, 0.5, 3.0], scale=[0.3, 1.0, 4.0]),
        lambda p: st.gumbel_r(p["loc"], p["scale"]),
        [-2.0, 0.4, 7.0],
    ),
}
NAMES = sorted(FAMILIES)


TORCH = {
    "Laplace": lambda td, p: td.Laplace(p["loc"], p["scale"]),
    "StudentT": lambda td, p: td.StudentT(p["df"], p["loc"], p["scale"]),
    "Cauchy": lambda td, p: td.Cauchy(p["loc"], p["scale"]),
    "Exponential": lambda td, p: td.Exponential(p["rate"]),
    "Gamma": lambda td, p: td.Gamma(p["concentration"], p["rate"]),
    "Beta": lambda td, p: td.Beta(p["concentration1"], p["concentration0"]),
    "LogNormal": lambda td, p: td.LogNormal(p["loc"], p["scale"]),
    "HalfNormal": lambda td, p: td.HalfNormal(p["scale"]),
    "Gumbel": lambda td, p: td.Gumbel(p["loc"], p["scale"]),
}


def _make(name, dtype):
    cls, params, ref, points = FAMILIES[name]
    arrays = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    # Reference parameters: the dtype-rounded values, in float64.
    p64 = {k: np.asarray(v, np.float64) for k, v in arrays.items()}
    return cls(**arrays), ref(p64), np.asarray(points, np.float64)[:, None]


def _close(got, want, rtol, atol=0.0):
    """Elementwise closeness; +-inf and NaN must match exactly."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    same_nonfinite = ~np.isfinite(want) & (np.isnan(want) == np.isnan(got)) & (
        np.isnan(want) | (got == want)
    )
    with np.errstate(invalid="ignore"):
        bad = ~same_nonfinite & ~(np.abs(got - want) <= atol + rtol * np.abs(want))
    assert not bad.any(), f"got {got[bad]} want {want[bad]}"


U = np.asarray([[0.01], [0.3], [0.5], [0.9], [0.999]])


def _summary(d, x, u):
    out = dict(log_prob=d.log_prob(x), entropy=d.entropy(), mean=d.mean, variance=d.variance)
    if type(d).cdf is not vikl.Distribution.cdf:  # the base declares cdf and raises
        out["cdf"] = d.cdf(x)
    if type(d).icdf is not vikl.Distribution.icdf:
        out["icdf"] = d.icdf(u)
    return out


_CACHE = {}


def _summaries(dtype):
    """Everything every family computes, from ONE compiled program per dtype.

    Eager dispatch, and compiling each family separately, are several times slower on CPU.
    """
    key = ("summary", np.dtype(dtype).name)
    if key not in _CACHE:
        made = {n: _make(n, dtype) for n in NAMES}
        ds = {n: m[0] for n, m in made.items()}
        xs = {n: jnp.asarray(m[2], dtype) for n, m in made.items()}
        out = jax.jit(lambda ds_, xs_, u: {n: _summary(ds_[n], xs_[n], u) for n in ds_})(
            ds, xs, jnp.asarray(U, dtype)
        )
        _CACHE[key] = jax.tree_util.tree_map(np.asarray, out)
    return _CACHE[key]


@pytest.mark.parametrize("name", NAMES)
def test_densities_moments_cdf_match_scipy(name, dtype):
    d, ref, x = _make(name, dtype)
    got = _summaries(dtype)[name]
    lp = got["log_prob"]
    assert lp.dtype == dtype and lp.shape == (len(x), 3)
    assert not np.isnan(np.asarray(lp)).any()
    with np.errstate(all="ignore"):
        want_lp = ref.logpdf(x)
    _close(lp, want_lp, rtol=10 * tol(dtype), atol=10 * tol(dtype))
    _close(got["entropy"], ref.entropy(), rtol=5 * tol(dtype), atol=tol(dtype))
    mean, var = ref.stats(moments="mv")
    if name == "StudentT":  # SciPy reports mean +inf for df <= 1; it does not exist.
        mean = np.where(np.asarray(d.df) <= 1, np.nan, mean)
    _close(got["mean"], mean, rtol=tol(dtype))
    _close(got["variance"], var, rtol=5 * tol(dtype))
    for k in ("entropy", "mean", "variance"):
        assert got[k].dtype == dtype and got[k].shape == (3,)
    if "cdf" in got:
        _close(got["cdf"], ref.cdf(x), rtol=20 * tol(dtype), atol=2 * tol(dtype))
    if "icdf" in got:
        _close(got["icdf"], ref.ppf(U), rtol=50 * tol(dtype), atol=2 * tol(dtype))
    # A second, independent implementation where one exists: torch.distributions.
    if name in TORCH:
        torch = pytest.importorskip("torch")
        p64 = {k: torch.tensor(np.asarray(v, np.float64)) for k, v in FAMILIES[name][1].items()}
        p64 = {k: v.to(torch.float32).to(torch.float64) if dtype == np.float32 else v for k, v in p64.items()}
        t = TORCH[name](torch.distributions, p64)
        inside = np.isfinite(want_lp)
        xt = torch.tensor(np.where(inside, x, 0.5))
        want_t = np.where(inside, t.log_prob(xt).numpy(), -np.inf)
        _close(lp, want_t, rtol=10 * tol(dtype), atol=10 * tol(dtype))
        _close(got["entropy"], t.entropy().numpy(), rtol=5 * tol(dtype), atol=tol(dtype))


def test_eager_matches_jit():
    for name in ("Laplace", "Exponential"):
        d, _, x = _make(name, np.dtype("float32"))
        x = jnp.asarray(x, jnp.float32)
        got = _summaries(np.float32)[name]
        np.testing.assert_allclose(d.log_prob(x), got["log_prob"], rtol=1e-6)
        np.testing.assert_allclose(d.entropy(), got["entropy"], rtol=1e-6)


def test_cdf_tails_are_accurate():
    # Cauchy and Laplace lower tails: no 0.5 - 0.4999... cancellation.
    np.testing.assert_allclose(vikl.Cauchy(0.0, 1.0).cdf(-1e6), st.cauchy.cdf(-1e6), rtol=1e-5)
    np.testing.assert_allclose(vikl.Laplace(0.0, 1.0).cdf(-30.0), st.laplace.cdf(-30.0), rtol=1e-5)
    np.testing.assert_allclose(vikl.Cauchy(0.0, 1.0).icdf(1e-7), st.cauchy.ppf(1e-7), rtol=1e-5)


def test_entropy_stays_accurate_for_large_shape_parameters():
    # The textbook Gamma / Student-t entropies cancel ~a log a terms; float32 vs mpmath.
    mpmath.mp.dps = 40
    for a in [5.0, 30.0, 1e3, 1e5]:
        A = mpmath.mpf(float(np.float32(a)))
        ref = A + mpmath.loggamma(A) + (1 - A) * mpmath.digamma(A)
        got = float(vikl.Gamma(a, 1.0).entropy())
        assert abs(got - float(ref)) <= 2e-6 * abs(float(ref)), (a, got, ref)
    for df in [3.0, 30.0, 1e3, 1e6]:
        nu = mpmath.mpf(float(np.float32(df)))
        h = (nu + 1) / 2
        ref = h * (mpmath.digamma(h) - mpmath.digamma(nu / 2)) + mpmath.log(
            mpmath.sqrt(nu) * mpmath.beta(nu / 2, mpmath.mpf(1) / 2)
        )
        got = float(vikl.StudentT(df).entropy())
        assert abs(got - float(ref)) <= 2e-6 * abs(float(ref)), (df, got, ref)
    # The Student-t normalizer too: log_prob(0) -> -½ log(2 pi) as df grows.
    for df in [1e3, 1e6]:
        nu = mpmath.mpf(float(np.float32(df)))
        ref = mpmath.loggamma((nu + 1) / 2) - mpmath.loggamma(nu / 2) - mpmath.log(nu * mpmath.pi) / 2
        assert abs(float(vikl.StudentT(df).log_prob(0.0)) - float(ref)) <= 2e-6 * abs(float(ref))


def test_special_moments_and_density_edges():
    t = vikl.StudentT(jnp.array([0.5, 1.5, 3.0]), 2.0, 1.0)
    np.testing.assert_array_equal(np.isnan(t.mean), [True, False, False])
    assert np.isnan(t.variance[0]) and t.variance[1] == np.inf and np.isfinite(t.variance[2])
    c = vikl.Cauchy(jnp.zeros(2), 1.0)
    assert np.isnan(c.mean).all() and np.isnan(c.variance).all() and c.mean.shape == (2,)
    # Densities at the edge of the support: +inf, finite or -inf as in SciPy, never NaN.
    g = vikl.Gamma(jnp.array([0.5, 1.0, 2.0]), 1.0)
    np.testing.assert_allclose(g.log_prob(0.0), [np.inf, 0.0, -np.inf], atol=1e-6)  # jax lgamma(1) ~ 5e-7
    assert float(g.log_prob(jnp.inf)[0]) == -np.inf
    b = vikl.Beta(jnp.array([0.5, 1.0, 2.0]), 1.0)
    np.testing.assert_allclose(b.log_prob(0.0), [np.inf, 0.0, -np.inf], atol=1e-6)
    np.testing.assert_allclose(b.log_prob(1.0), st.beta([0.5, 1.0, 2.0], 1.0).logpdf(1.0), rtol=1e-6, atol=1e-6)
    assert float(vikl.Exponential(2.0).log_prob(0.0)) == pytest.approx(np.log(2.0))
    assert float(vikl.Uniform(0.0, 2.0).log_prob(2.0)) == pytest.approx(-np.log(2.0))


def _grads_and_vmaps():
    """For every family (float32, one compiled program): log_prob and entropy, their gradients
    with respect to the parameters and x (where the value is finite), and entropy under vmap."""
    if "grads" not in _CACHE:
        params = {n: {k: jnp.asarray(v, jnp.float32) for k, v in FAMILIES[n][1].items()} for n in NAMES}
        xs = {n: jnp.asarray(FAMILIES[n][3], jnp.float32)[:, None] for n in NAMES}

        def one(cls, params_, x_):
            def total(p_, xx):
                d_ = cls(**p_)
                lp = d_.log_prob(xx)
                finite = jnp.isfinite(jax.lax.stop_gradient(lp))
                return jnp.sum(jnp.where(finite, lp, 0.0)) + jnp.sum(d_.entropy())

            grads = jax.grad(total, argnums=(0, 1))(params_, x_)
            per = jax.vmap(lambda p_: cls(**p_).entropy())(params_)  # vmap over the batch axis
            return cls(**params_).entropy(), per, grads

        fn = jax.jit(lambda ps, xs_: {n: one(FAMILIES[n][0], ps[n], xs_[n]) for n in ps})
        _CACHE["grads"] = jax.tree_util.tree_map(np.asarray, fn(params, xs))
    return _CACHE["grads"]


@pytest.mark.parametrize("name", NAMES)
def test_jit_vmap_and_finite_gradients_of_log_prob_and_entropy(name):
    h_jit, h_vmap, grads = _grads_and_vmaps()[name]
    np.testing.assert_allclose(h_vmap, h_jit, rtol=1e-6)
    np.testing.assert_allclose(h_jit, _summaries(np.float32)[name]["entropy"], rtol=1e-6)
    for leaf in jax.tree_util.tree_leaves(grads):
        assert np.isfinite(leaf).all()


def _samples():
    """4000 draws from every family (float32, one compiled program)."""
    if "samples" not in _CACHE:
        ds = {n: _make(n, np.float32)[0] for n in NAMES}
        keys = dict(zip(NAMES, jax.random.split(jax.random.PRNGKey(11), len(NAMES))))
        fn = jax.jit(lambda ds_, ks: {n: ds_[n].sample(ks[n], (4000,)) for n in ds_})
        _CACHE["samples"] = fn(ds, keys)
    return _CACHE["samples"]


@pytest.mark.parametrize("name", NAMES)
def test_sampling_shape_and_distribution(name):
    cls, params, ref_fn, _ = FAMILIES[name]
    d = _make(name, np.float32)[0]
    key = jax.random.PRNGKey(11)
    assert jax.eval_shape(lambda k: d.sample(k, (2, 5)), key).shape == (2, 5, 3)
    assert jax.eval_shape(lambda k: d.sample(k), key).shape == (3,)
    x = _samples()[name]
    assert x.shape == (4000, 3) and x.dtype == jnp.float32
    x = np.asarray(x, np.float64)
    assert np.isfinite(x).all()
    p64 = {k: np.asarray(np.asarray(v, np.float32), np.float64) for k, v in params.items()}
    for i in range(3):
        one = ref_fn({k: v[i] for k, v in p64.items()})
        assert st.kstest(x[:, i], one.cdf).pvalue > 1e-3, (name, i)
        mean, var = one.stats(moments="mv")
        if np.isfinite(var):
            se = np.sqrt(var / x.shape[0])
            assert abs(x[:, i].mean() - mean) <= mc_tolerance(se), (name, i)


@pytest.mark.slow  # compiling the gradients of jax.random.gamma takes ~10 s on CPU
def test_reparameterized_gradients_of_gamma_beta_studentt(key):
    # Pathwise gradients through the implicit reparameterization of jax.random.gamma/beta/t:
    # the mean of per-sample d x / d theta estimates d E[f(X)] / d theta.
    n = 20_000
    k1, k2, k3 = jax.random.split(key, 3)
    cases = [
        # (family, parameters, which one varies, f, d E f / d theta)
        (vikl.Gamma, (2.0, 4.0), 0, lambda x: x, 1 / 4.0),  # E X = a / b
        (vikl.Beta, (2.0, 3.0), 0, lambda x: x, 3.0 / 25.0),  # E X = a / (a + b)
        (vikl.StudentT, (5.0,), 0, jnp.square, -2 / 9.0),  # E X² = df / (df - 2)
    ]
    for (cls, args, i, f, want), k in zip(cases, (k1, k2, k3)):
        assert cls.reparameterized

        def per_sample(theta):
            full = list(args)
            full[i] = theta
            return f(cls(*full).sample(k))

        theta = jnp.full((n,), args[i], jnp.float32)  # one parameter per draw -> per-draw grads
        g = np.asarray(jax.grad(lambda t: jnp.sum(per_sample(t)))(theta), np.float64)
        assert np.isfinite(g).all()
        assert abs(g.mean() - want) <= mc_tolerance(g.std() / np.sqrt(n)), (cls.__name__, g.mean(), want)


@pytest.mark.parametrize(
    "make, arg",
    [
        (lambda: vikl.Laplace(0.0, 0.0), "scale"),
        (lambda: vikl.StudentT(-1.0), "df"),
        (lambda: vikl.StudentT(3.0, 0.0, -2.0), "scale"),
        (lambda: vikl.Cauchy(0.0, -1.0), "scale"),
        (lambda: vikl.Exponential(jnp.array([1.0, 0.0])), "rate"),
        (lambda: vikl.Gamma(0.0, 1.0), "concentration"),
        (lambda: vikl.Gamma(1.0, -1.0), "rate"),
        (lambda: vikl.Beta(-1.0, 1.0), "concentration1"),
        (lambda: vikl.Beta(1.0, 0.0), "concentration0"),
        (lambda: vikl.LogNormal(0.0, 0.0), "scale"),
        (lambda: vikl.HalfNormal(-1.0), "scale"),
        (lambda: vikl.Gumbel(0.0, 0.0), "scale"),
        (lambda: vikl.Uniform(jnp.array([0.0, 2.0]), jnp.array([1.0, 1.0])), "low"),
        (lambda: vikl.Uniform(1.0, 1.0), "high"),
        (lambda: vikl.Uniform(0.0, jnp.inf), "high"),
    ],
)
def test_bad_parameters_raise_value_error_naming_the_argument(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()


def test_uniform_error_names_both_bounds_and_validation_can_be_skipped():
    with pytest.raises(ValueError) as err:
        vikl.Uniform(2.0, 1.0)
    assert "low" in str(err.value) and "high" in str(err.value)
    jax.jit(lambda lo: vikl.Uniform(lo, 1.0).entropy())(2.0)  # no check on traced values


def test_student_t_df_one_is_cauchy():
    x = jnp.asarray([-3.0, 0.2, 10.0])
    np.testing.assert_allclose(vikl.StudentT(1.0, 0.5, 2.0).log_prob(x), vikl.Cauchy(0.5, 2.0).log_prob(x), rtol=1e-6)
