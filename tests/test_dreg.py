"""Doubly reparameterized gradients (Tucker et al. 2019): Renyi(gradient="dreg") and
ForwardKL(method="snis", gradient="dreg").

Each DReG gradient must have the expectation of the plain estimator's gradient (the same keys
give paired draws; the mean difference over keys is within 5 standard errors of 0), and at
alpha = 1 the exact gradient of KL(q||p), derived by hand for two Gaussians.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vikl
from tests.conftest import mc_tolerance
from vikl import objectives as O

M, S = np.array([0.5, -0.3]), np.array([0.7, 1.3])
MU, T = np.array([0.0, 0.4]), np.array([1.0, 0.9])
Q = vikl.MultivariateNormalDiag(jnp.asarray(M, jnp.float32), jnp.asarray(S, jnp.float32))
P = vikl.MultivariateNormalDiag(jnp.asarray(MU, jnp.float32), jnp.asarray(T, jnp.float32))
FIELDS = ("loc", "scale_diag")


def _grads(objs, q, p, keys):
    """name -> gradients (keys, 2 fields x 2 coordinates) of each objective, one program."""
    @jax.jit
    def run(keys):
        def one(obj, k):
            g = jax.grad(lambda qq: obj(qq, p, k))(q)
            return jnp.concatenate([getattr(g, f) for f in FIELDS])
        return {name: jax.vmap(lambda k, obj=obj: one(obj, k))(keys) for name, obj in objs.items()}

    return {k: np.asarray(v, np.float64) for k, v in run(keys).items()}


def _assert_same_mean(a, b):
    diff = a - b
    se = diff.std(0, ddof=1) / math.sqrt(diff.shape[0])
    assert np.all(np.abs(diff.mean(0)) < mc_tolerance(se) + 1e-7), (diff.mean(0), se)


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_renyi_dreg_has_the_reparameterized_gradients_mean(alpha):
    keys = jax.random.split(jax.random.PRNGKey(1), 4000)
    g = _grads({"reparam": O.Renyi(alpha, num_samples=8),
                "dreg": O.Renyi(alpha, num_samples=8, gradient="dreg")}, Q, P, keys)
    _assert_same_mean(g["dreg"], g["reparam"])
    # measured (4000 keys, K = 8), total variance reparam -> DReG: 1.47 -> 1.00 (alpha 0),
    # 0.97 -> 0.45 (alpha 0.5)
    assert g["dreg"].var(0).sum() < g["reparam"].var(0).sum()


def test_renyi_dreg_at_alpha_one_is_the_exact_kl_gradient():
    # L_1 = -KL(q||p): loss gradient = grad KL, by hand for diagonal Gaussians.
    keys = jax.random.split(jax.random.PRNGKey(2), 2000)
    g = _grads({"dreg": O.Renyi(1.0, num_samples=8, gradient="dreg")}, Q, P, keys)["dreg"]
    exact = np.concatenate([(M - MU) / T**2, S / T**2 - 1 / S])
    se = g.std(0, ddof=1) / math.sqrt(g.shape[0])
    assert np.all(np.abs(g.mean(0) - exact) < mc_tolerance(se))
    # at q = p the DReG (sticking-the-landing) gradient is exactly zero
    g0 = _grads({"dreg": O.Renyi(0.5, num_samples=8, gradient="dreg")}, Q, Q, keys[:4])["dreg"]
    assert np.max(np.abs(g0)) < 1e-5


def test_snis_forward_kl_dreg_has_the_score_gradients_mean():
    keys = jax.random.split(jax.random.PRNGKey(3), 4000)
    g = _grads({"score": O.ForwardKL(8, method="snis"),
                "dreg": O.ForwardKL(8, method="snis", gradient="dreg")}, Q, P, keys)
    _assert_same_mean(g["dreg"], g["score"])
    # measured (4000 keys, K = 8), total variance score -> DReG: 5.0 -> 0.41
    assert g["dreg"].var(0).sum() < g["score"].var(0).sum()


def test_dreg_options_are_checked():
    with pytest.raises(ValueError, match="alpha >= 0"):
        O.Renyi(-1.0, gradient="dreg")
    with pytest.raises(ValueError, match="gradient must be"):
        O.Renyi(0.5, gradient="score")
    with pytest.raises(ValueError, match="method='snis' only"):
        O.ForwardKL(method="samples", gradient="dreg")
    with pytest.raises(ValueError, match="'snis' method"):
        O.ForwardKL(gradient="dreg")(Q, P, jax.random.PRNGKey(0))  # P can be sampled: 'samples'
