"""The Distribution base: pytree behaviour, construction checks, custom families."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import vikl
from tests.families import EXAMPLES


class Logistic(vikl.Distribution):
    """A family written the way the README tells users to write one."""

    loc: jax.Array = vikl.param(vikl.constraints.real)
    scale: jax.Array = vikl.param(vikl.constraints.positive)

    def sample(self, key, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        return self.loc + self.scale * jax.random.logistic(key, shape, self.loc.dtype)

    def log_prob(self, x):
        z = (x - self.loc) / self.scale
        return -z - 2 * jax.nn.softplus(-z) - jnp.log(self.scale)


def test_custom_family_in_a_few_lines(key):
    d = Logistic(jnp.array([0.0, 1.0]), 2.0)
    assert d.batch_shape == (2,) and d.event_shape == ()
    x = d.sample(key, (5,))
    assert x.shape == (5, 2)
    ref = scipy.stats.logistic(loc=[0.0, 1.0], scale=2.0).logpdf(np.asarray(x))
    np.testing.assert_allclose(d.log_prob(x), ref, rtol=1e-5)
    est = vikl.estimate_kl(d, vikl.Normal(0.0, 3.0), key, num_samples=1000)
    assert est.value.shape == (2,)


def test_parameters_broadcast_and_keep_dtype():
    d = vikl.Normal(jnp.zeros((3, 1)), jnp.ones((4,)))
    assert d.batch_shape == (3, 4)
    assert d.loc.shape == d.scale.shape == (3, 4)
    assert d.loc.dtype == jnp.float32


def test_float64_under_x64():
    with jax.enable_x64(True):
        d = vikl.Normal(0.0, 1.0)
        assert d.loc.dtype == jnp.float64
        assert d.entropy().dtype == jnp.float64


def test_mixed_precision_params_are_cast_to_the_widest():
    with jax.enable_x64(True):
        d = vikl.Normal(jnp.zeros(2, jnp.float32), jnp.ones(2, jnp.float64))
        assert d.loc.dtype == d.scale.dtype == jnp.float64


def test_pytree_roundtrip_skips_init_validation():
    d = vikl.Normal(jnp.array([0.0, 1.0]), jnp.array([1.0, 2.0]))
    leaves, treedef = jax.tree_util.tree_flatten(d)
    assert len(leaves) == 2
    # A zero or negative "scale" must be representable (gradients, tangents).
    zeros = jax.tree_util.tree_unflatten(treedef, [jnp.zeros(2), -jnp.ones(2)])
    assert isinstance(zeros, vikl.Normal)
    g = jax.grad(lambda dd: jnp.sum(dd.log_prob(0.5)))(d)
    assert isinstance(g, vikl.Normal) and np.isfinite(np.asarray(g.scale)).all()
    shapes = jax.eval_shape(lambda dd: dd, d)
    assert shapes.loc.shape == (2,)


def test_immutable():
    d = vikl.Normal(0.0, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.loc = 1.0


def test_jit_vmap_construction_inside_transforms():
    @jax.jit
    def f(loc, scale):
        return vikl.Normal(loc, scale).entropy()

    np.testing.assert_allclose(f(0.0, 2.0), scipy.stats.norm(0, 2).entropy(), rtol=1e-6)
    out = jax.vmap(lambda s: vikl.Normal(0.0, s).log_prob(1.0))(jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(out, scipy.stats.norm(0, [1.0, 2.0]).logpdf(1.0), rtol=1e-6)
    # vmap over a batched distribution: batch_shape is computed from the leaves.
    d = vikl.Normal(jnp.zeros(3), jnp.ones(3))
    shapes = jax.vmap(lambda dd: jnp.asarray(dd.batch_shape == ()))(d)
    assert bool(shapes.all())


def test_invalid_values_inside_jit_are_not_checked_but_documented():
    # Inside jit the scale cannot be checked; log_prob is NaN for scale < 0.
    out = jax.jit(lambda s: vikl.Normal(0.0, s).log_prob(0.0))(-1.0)
    assert np.isnan(float(out))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: vikl.Normal(0.0, -0.5), r"scale must be > 0 and finite; got min -0.5"),
        (lambda: vikl.Normal(0.0, [1.0, 0.0]), r"scale must be > 0"),
        (lambda: vikl.Normal(jnp.arange(3), 1.0), r"loc must have a floating dtype; got int32"),
        (lambda: vikl.Normal(jnp.array([1 + 1j]), 1.0), r"loc must be a real floating-point array"),
        (lambda: vikl.Normal("a", 1.0), r"loc must be real numbers"),
        (lambda: vikl.Normal(jnp.zeros(3), jnp.ones(4)), r"do not broadcast \(loc: \(3,\), scale: \(4,\)\)"),
        (lambda: vikl.Normal(float("nan"), 1.0), r"loc must be finite real numbers \(not NaN or \+-inf\); got 1 NaN"),
    ],
)
def test_bad_input_raises_clear_value_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_validation_can_be_switched_off():
    with vikl.validation(False):
        d = vikl.Normal(0.0, -1.0)
    assert float(d.scale) == -1.0
    with pytest.raises(ValueError):
        vikl.Normal(0.0, -1.0)


def test_repr_is_short_and_informative():
    assert repr(vikl.Normal(0.0, 1.0)) == "Normal(loc=0.0, scale=1.0)"
    assert repr(vikl.Normal(jnp.zeros(10), 1.0)) == "Normal(loc=float32[10], scale=float32[10])"


def test_subclass_of_a_family_keeps_working():
    class Shifted(vikl.Normal):
        pass

    d = Shifted(1.0, 2.0)
    assert float(d.mean) == 1.0
    leaves, treedef = jax.tree_util.tree_flatten(d)
    assert type(jax.tree_util.tree_unflatten(treedef, leaves)) is Shifted


def test_python_lists_are_converted():
    d = vikl.Normal([0, 1], [1, 2])
    assert d.loc.dtype == jnp.float32 and d.batch_shape == (2,)


# ------------------------------------------------------------------ optional members
# Declared on Distribution; a family overrides those it has in closed form.
OPTIONAL_PROPERTIES = ("mean", "variance", "mode")
OPTIONAL_METHODS = ("cdf", "icdf", "entropy")


def _family_classes():
    out = []
    for name in vikl.__all__:
        obj = getattr(vikl, name)
        if isinstance(obj, type) and issubclass(obj, vikl.Distribution) and obj is not vikl.Distribution:
            out.append(obj)
    return out


def test_optional_members_are_declared_on_the_base_with_the_kind_families_use():
    assert len(_family_classes()) >= 20
    for member in OPTIONAL_PROPERTIES:
        assert isinstance(vars(vikl.Distribution)[member], property), member
    for member in OPTIONAL_METHODS:
        assert callable(vars(vikl.Distribution)[member]), member
    mismatched = []
    for cls in _family_classes():
        for klass in cls.__mro__[: cls.__mro__.index(vikl.Distribution)]:
            for member in OPTIONAL_PROPERTIES + OPTIONAL_METHODS:
                if member in vars(klass):
                    is_property = isinstance(vars(klass)[member], property)
                    if is_property != (member in OPTIONAL_PROPERTIES):
                        mismatched.append(f"{klass.__name__}.{member}")
    assert mismatched == []


@pytest.mark.parametrize("member", OPTIONAL_PROPERTIES + ("cdf", "icdf", "stddev"))
def test_a_family_without_a_member_raises_naming_the_family(member):
    d = Logistic(0.0, 1.0)
    shown = "variance" if member == "stddev" else member
    with pytest.raises(NotImplementedError, match=f"^Logistic has no closed-form {shown}$"):
        value = getattr(d, member)
        if member in ("cdf", "icdf"):
            value(jnp.asarray(0.5))


def _call(d, member):
    if member in OPTIONAL_PROPERTIES:
        return getattr(d, member)
    if member == "cdf":
        return d.cdf(jnp.full(tuple(d.batch_shape) + tuple(d.event_shape), 0.5, d.dtype))
    return d.icdf(jnp.full(d.batch_shape, 0.3, d.dtype))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_family_implements_or_names_itself_for_each_optional_member(name):
    d = EXAMPLES[name][0]()
    cls = type(d)
    for member in OPTIONAL_PROPERTIES + ("cdf", "icdf"):
        inherited = getattr(cls, member) is getattr(vikl.Distribution, member)
        if inherited:
            with pytest.raises(NotImplementedError, match=f"^{cls.__name__} has no closed-form {member}$"):
                _call(d, member)
            continue
        try:
            value = _call(d, member)
        except NotImplementedError as err:  # a family's own reason (Categorical has no mean)
            assert str(err).startswith(f"{cls.__name__} has no {member}"), str(err)
            continue
        event = d.event_shape if member in OPTIONAL_PROPERTIES else ()
        assert jnp.shape(value) == tuple(d.batch_shape) + tuple(event), (member, jnp.shape(value))


@pytest.mark.parametrize("name", ["Normal", "Laplace", "Cauchy", "Exponential", "LogNormal", "HalfNormal", "Gumbel"])
def test_icdf_inverts_cdf_and_matches_scipy(name, dtype):
    d = jax.tree_util.tree_map(lambda v: jnp.asarray(v, dtype), EXAMPLES[name][0]())
    u = jnp.asarray([0.05, 0.3, 0.5, 0.9], dtype)
    x = d.icdf(u)
    assert x.dtype == dtype
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == jnp.float32 else {"rtol": 1e-12, "atol": 1e-14}
    np.testing.assert_allclose(d.cdf(x), u, **tol)
    scipy_names = {"Normal": "norm", "Laplace": "laplace", "Cauchy": "cauchy", "Exponential": "expon",
                   "LogNormal": "lognorm", "HalfNormal": "halfnorm", "Gumbel": "gumbel_r"}
    ref = _scipy_frozen(scipy_names[name], d).ppf(np.asarray(u, np.float64))
    np.testing.assert_allclose(x, ref, **tol)


def _scipy_frozen(scipy_name, d):
    dist = getattr(scipy.stats, scipy_name)
    if scipy_name == "expon":
        return dist(scale=1 / float(d.rate))
    if scipy_name == "lognorm":
        return dist(float(d.scale), scale=np.exp(float(d.loc)))
    if scipy_name == "halfnorm":
        return dist(scale=float(d.scale))
    return dist(loc=float(d.loc), scale=float(d.scale))
