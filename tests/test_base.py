"""The Distribution base: pytree behaviour, construction checks, custom families."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import vikl


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
