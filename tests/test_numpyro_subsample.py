"""NumPyro models with ``plate(..., subsample_size=B)`` as minibatch targets of vikl.fit.

References are independent of vikl's and NumPyro's code: the Normal-Normal -ELBO and its
gradient in closed form (numpy, float64), the exact conjugate posterior, and scipy's
log densities for the full-data ``log_prob``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

import vikl
from vikl.objectives import ReverseKL

numpyro = pytest.importorskip("numpyro")
dist = numpyro.distributions

N, B, TAU, SIGMA = 40, 8, 1.0, 0.8  # observations, batch, prior sd, noise sd


def _data():
    return np.random.default_rng(4).normal(1.2, 1.5, size=N)


def _model(y, subsample_size=None):
    theta = numpyro.sample("theta", dist.Normal(0.0, TAU))
    with numpyro.plate("data", y.shape[0], subsample_size=subsample_size) as idx:
        numpyro.deterministic("resid", y[idx] - theta)
        numpyro.sample("y", dist.Normal(theta, SIGMA), obs=y[idx])


def _ll(theta, y_i):
    return vikl.Normal(theta[0], SIGMA).log_prob(y_i)


def _exact_loss_and_grad(y, m, s):
    """-ELBO of q = N(m, s^2) for y_i ~ N(theta, SIGMA^2), theta ~ N(0, TAU^2); its gradient."""
    ell = np.sum(-0.5 * np.log(2 * np.pi * SIGMA**2) - ((y - m) ** 2 + s**2) / (2 * SIGMA**2))
    kl = np.log(TAU / s) + (s**2 + m**2) / (2 * TAU**2) - 0.5
    g_m = -np.sum(y - m) / SIGMA**2 + m / TAU**2
    g_s = y.size * s / SIGMA**2 + s / TAU**2 - 1.0 / s
    return kl - ell, g_m, g_s


def _within(samples, ref, sigmas=5.0):
    se = samples.std(0, ddof=1) / np.sqrt(samples.shape[0])
    np.testing.assert_array_less(np.abs(samples.mean(0) - ref), sigmas * se + 1e-9)


def test_minibatch_elbo_matches_posterior_and_the_exact_full_data_value(capsys):
    """Over 3000 step keys, the -ELBO and its gradient of the NumPyro model with
    subsample_size=B and of vikl.Posterior(batch_size=B) (closed-form and Monte-Carlo prior
    KL): means within 5 SE of the exact full-data values; the minibatch noise is there
    (variance far above the full-data model's); for each key the NumPyro model's loss equals
    Posterior's with the Monte-Carlo prior KL (same indices, same draws) up to round-off."""
    with jax.enable_x64(True):
        y = _data()
        yj = jnp.asarray(y)
        q = vikl.Normal(jnp.array([0.9]), jnp.array([0.3]))
        prior = vikl.Normal(jnp.zeros(1), TAU)
        targets = [vikl.NumPyroModel(_model, yj, B), vikl.NumPyroModel(_model, yj),
                   vikl.Posterior(prior, _ll, yj, batch_size=B),
                   vikl.Posterior(prior, _ll, yj, batch_size=B, prior_kl="monte_carlo")]
        assert hasattr(targets[0], "reverse_kl_loss") and not hasattr(targets[1], "reverse_kl_loss")
        assert targets[0].subsample_plates == (("data", N, B),)
        objective = ReverseKL(num_samples=4)
        one = jax.value_and_grad(lambda q, t, k: objective(q, t, k))
        keys = jax.random.split(jax.random.key(1), 3000)
        fn = jax.jit(jax.vmap(lambda q, ts, k: [one(q, t, k) for t in ts], in_axes=(None, None, 0)))
        out = fn(q, targets, keys)
        ref, ref_m, ref_s = _exact_loss_and_grad(y, 0.9, 0.3)
        var = []
        for loss, g in out:
            loss, g_m, g_s = np.asarray(loss), np.asarray(g.loc)[:, 0], np.asarray(g.scale)[:, 0]
            _within(loss, ref)
            _within(g_m, ref_m)
            _within(g_s, ref_s)
            var.append(loss.var())
        assert var[0] > 10 * var[1] and var[2] > 10 * var[1]
        np.testing.assert_allclose(np.asarray(out[0][0]), np.asarray(out[3][0]), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(out[0][1].loc), np.asarray(out[3][1].loc),
                                   rtol=1e-10, atol=1e-10)
        with capsys.disabled():
            print(f"\nB={B} of N={N}, 4 draws: loss variance NumPyro subsample {var[0]:.4g}, "
                  f"Posterior {var[2]:.4g} (closed-form prior KL), {var[3]:.4g} (Monte Carlo), "
                  f"full data {var[1]:.3g}; max |NumPyro - Posterior(Monte Carlo)| per key "
                  f"{np.max(np.abs(np.asarray(out[0][0]) - np.asarray(out[3][0]))):.2g}")


def test_fit_reaches_the_exact_posterior():
    """8 restarts (batched keys), 2000 steps (constant rate, then decaying): the fitted loc
    and scale match the conjugate posterior, their mean over restarts within 5 SE."""
    with jax.enable_x64(True):
        y = _data()
        prec = 1 / TAU**2 + N / SIGMA**2
        mean, sd = np.sum(y) / SIGMA**2 / prec, prec**-0.5
        steps, warm = 2000, 500
        rate = optax.join_schedules(
            [optax.constant_schedule(0.05), optax.exponential_decay(0.05, steps - warm, 2e-4)],
            [warm])
        target = vikl.NumPyroModel(_model, jnp.asarray(y), B)
        res = vikl.fit(vikl.Normal(jnp.zeros(1), jnp.full(1, 0.5)), target,
                       optimizer=optax.adam(rate), num_steps=steps, chunk_size=steps,
                       key=jax.random.split(jax.random.key(0), 8), progress=False,
                       num_diagnostic_samples=0)
        for values, exact, band in ((res.distribution.loc, mean, 0.75),
                                    (res.distribution.scale, sd, 0.1)):
            values = np.asarray(values, np.float64)[:, 0]
            se = max(values.std(ddof=1) / np.sqrt(values.size), 1e-3 * sd)
            assert abs(values.mean() - exact) < 5 * se, (values, exact)
            np.testing.assert_array_less(np.abs(values - exact), band * sd)


def test_log_prob_and_deterministic_sites_use_the_full_data():
    with jax.enable_x64(True):
        y = _data()
        target = vikl.NumPyroModel(_model, jnp.asarray(y), B)
        u = np.array([[-0.5], [0.7], [1.9]])
        ref = (stats.norm(0, TAU).logpdf(u[:, 0])
               + stats.norm(u, SIGMA).logpdf(y[None, :]).sum(1))
        np.testing.assert_allclose(np.asarray(target.log_prob(jnp.asarray(u))), ref, rtol=1e-12)
        sites = target.constrain(jnp.asarray(u), deterministic=True)
        np.testing.assert_allclose(np.asarray(sites["resid"]), y[None, :] - u, rtol=1e-12)


def _two_plate_model(y1, y2):
    theta = numpyro.sample("theta", dist.Normal(0.0, TAU))
    with numpyro.plate("a", y1.shape[0], subsample_size=6) as i:
        numpyro.sample("y1", dist.Normal(theta, SIGMA), obs=y1[i])
    with numpyro.plate("b", y2.shape[0], subsample_size=5):
        numpyro.sample("y2", dist.Normal(theta, SIGMA), obs=numpyro.subsample(y2, event_dim=0))


@pytest.mark.slow  # ~3 s; test_minibatch_elbo_matches_posterior... is the default-run sibling
def test_two_subsampled_plates():
    """Two plates (indexing and numpyro.subsample): independent indices, the -ELBO unbiased
    for the exact full-data value (2000 keys, 5 SE), log_prob over both full plates."""
    with jax.enable_x64(True):
        y = _data()
        y1, y2 = jnp.asarray(y[:30]), jnp.asarray(y[10:])
        target = vikl.NumPyroModel(_two_plate_model, y1, y2)
        assert target.subsample_plates == (("a", 30, 6), ("b", 30, 5))
        idx = target._minibatch_indices(jax.random.key(0))
        assert not np.array_equal(np.asarray(idx["a"][:5]), np.asarray(idx["b"]))
        q = vikl.Normal(jnp.array([0.9]), jnp.array([0.3]))
        keys = jax.random.split(jax.random.key(3), 2000)
        loss = np.asarray(jax.jit(jax.vmap(lambda k: ReverseKL(num_samples=4)(q, target, k)))(keys))
        _within(loss, _exact_loss_and_grad(np.concatenate([y[:30], y[10:]]), 0.9, 0.3)[0])
        u = np.array([[0.2], [1.4]])
        ref = (stats.norm(0, TAU).logpdf(u[:, 0])
               + stats.norm(u, SIGMA).logpdf(np.concatenate([y[:30], y[10:]])[None, :]).sum(1))
        np.testing.assert_allclose(np.asarray(target.log_prob(jnp.asarray(u))), ref, rtol=1e-12)


@jax.tree_util.register_pytree_node_class
class _LogProbOnly:
    """A target known only by ``log_prob``: the reverse KL's path before minibatch models."""

    def __init__(self, target):
        self.target = target

    def log_prob(self, u):
        return self.target.log_prob(u)

    def tree_flatten(self):
        return (self.target,), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)


def test_a_model_without_subsampling_keeps_its_path_bit_for_bit():
    y = jnp.asarray(_data(), jnp.float32)
    target = vikl.NumPyroModel(_model, y)
    assert not hasattr(target, "reverse_kl_loss") and target.subsample_plates == ()
    q = vikl.Normal(jnp.array([0.9]), jnp.array([0.3]))
    key = jax.random.key(2)
    ours = jax.jit(lambda q, t, k: ReverseKL()(q, t, k))
    np.testing.assert_array_equal(np.asarray(ours(q, target, key)),
                                  np.asarray(ours(q, _LogProbOnly(target), key)))


def _local_latent_model(y):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    with numpyro.plate("N", y.shape[0], subsample_size=4):
        z = numpyro.sample("z", dist.Normal(mu, 1.0))
        numpyro.sample("y", dist.Normal(z, 1.0), obs=numpyro.subsample(y, event_dim=0))


def test_a_local_latent_inside_a_subsampled_plate_is_refused():
    with pytest.raises(NotImplementedError, match=r"latent sites 'z' \(plate 'N'\) lie inside a plate with subsample_size"):
        vikl.NumPyroModel(_local_latent_model, jnp.zeros(10))
