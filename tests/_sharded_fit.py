"""Data-parallel fits on a forced 4-device CPU mesh; run by tests/test_sharding.py in a subprocess.

Needs ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` in the environment (JAX fixes
the device count when it starts). Exits non-zero with the failing check's message; prints
one JSON line of measured differences on success. Usage: ``python tests/_sharded_fit.py DIR``
(DIR: where a fitted result is saved and loaded).
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

import vikl
from vikl._posterior import Posterior  # vikl.Posterior once exported

jax.config.update("jax_numpy_dtype_promotion", "strict")


def log_likelihood(theta, obs):
    x, y = obs
    logit = jnp.dot(x, theta)
    return y * jax.nn.log_sigmoid(logit) + (1.0 - y) * jax.nn.log_sigmoid(-logit)


def main(folder):
    devices = jax.devices()
    assert len(devices) == 4, f"expected 4 forced host devices, got {len(devices)}"
    mesh = Mesh(np.array(devices), ("data",))
    rng = np.random.default_rng(0)
    n, d = 256, 4
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-x @ np.array([1.0, -0.5, 0.0, 2.0])))).astype(np.float32)
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    xs, ys = jax.device_put(x, sharding), jax.device_put(y, sharding)
    x1, y1 = jnp.asarray(x), jnp.asarray(y)
    prior = vikl.Normal(jnp.zeros(d), 1.0)
    q0 = vikl.Normal(jnp.zeros(d), jnp.ones(d))
    opt = optax.adam(0.05)
    kw = dict(optimizer=opt, num_steps=100, progress=False, num_diagnostic_samples=0,
              chunk_size=100)
    out = {}

    # full data: the loss and gradient on sharded data equal the one-device values
    value_and_grad = jax.jit(jax.value_and_grad(
        lambda q, post, k: vikl.objectives.ReverseKL()(q, post, k)))
    q = vikl.Normal(jnp.full(d, 0.2), jnp.full(d, 0.7))
    one = value_and_grad(q, Posterior(prior, log_likelihood, (x1, y1)), jax.random.key(3))
    four = value_and_grad(q, Posterior(prior, log_likelihood, (xs, ys)), jax.random.key(3))
    for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(four)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-5)
        out["full_data_max_abs_diff"] = max(out.get("full_data_max_abs_diff", 0.0),
                                            float(np.max(np.abs(np.asarray(a) - np.asarray(b)))))

    # each device evaluates its share of the minibatch; XLA sums the shares (an all-reduce)
    grad = jax.jit(jax.grad(lambda q, post, k: vikl.objectives.ReverseKL()(q, post, k)))
    post = Posterior(prior, log_likelihood, (xs, ys), batch_size=32)
    hlo = grad.lower(q0, post, jax.random.key(0)).compile().as_text()
    assert "all-reduce" in hlo, "no cross-device reduction in the compiled gradient"

    # a batch the 4 devices cannot split evenly: refused at construction
    try:
        Posterior(prior, log_likelihood, (xs, ys), batch_size=30)
    except ValueError as err:
        assert "batch_size must be a multiple of the 4 devices" in str(err), str(err)
    else:
        raise AssertionError("batch_size=30 on 4 devices was accepted")

    # fits: batched restarts (vmap over keys) with minibatches of sharded data = one device
    keys = jax.random.split(jax.random.key(1), 4)
    post = Posterior(prior, log_likelihood, (xs, ys), batch_size=32)
    restarts = vikl.fit(q0, post, key=keys, **kw)
    assert post.data[0].sharding == sharding, "the data lost their sharding"
    ref = vikl.fit(q0, Posterior(prior, log_likelihood, (x1, y1), batch_size=32), key=keys, **kw)
    for f in ("loc", "scale"):
        a = np.asarray(getattr(ref.distribution, f))
        b = np.asarray(getattr(restarts.distribution, f))
        np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-5, err_msg=f"restarts {f}")
        out[f"fit_max_abs_diff_{f}"] = float(np.max(np.abs(a - b)))
    np.testing.assert_allclose(restarts.losses, ref.losses, rtol=2e-4, atol=1e-3)

    # save / load of a result fitted on sharded data round-trips exactly
    path = f"{folder}/sharded.npz"
    restarts.save(path)
    back = vikl.FitResult.load(path)
    np.testing.assert_array_equal(np.asarray(back.distribution.loc),
                                  np.asarray(restarts.distribution.loc))
    np.testing.assert_array_equal(np.asarray(back.distribution.scale),
                                  np.asarray(restarts.distribution.scale))
    np.testing.assert_array_equal(back.losses, restarts.losses)

    # estimate_kl with many draws, one share of the keys per device, averaged
    p, q = vikl.Normal(jnp.zeros(d), 1.0), vikl.Normal(jnp.full(d, 0.3), 1.2)
    kl_keys = jax.random.split(jax.random.key(2), 8)

    def values(keys):
        return jax.vmap(lambda k: vikl.estimate_kl(p, q, k, num_samples=20_000).value)(keys)

    spread = jax.jit(values, in_shardings=NamedSharding(mesh, PartitionSpec("data")),
                     out_shardings=NamedSharding(mesh, PartitionSpec("data")))(
        jax.device_put(kl_keys, NamedSharding(mesh, PartitionSpec("data"))))
    assert len(spread.sharding.device_set) == 4, "estimate_kl did not run on 4 devices"
    exact = np.asarray(vikl.kl_divergence(p, q))
    values = np.asarray(spread)
    se = values.std(0, ddof=1) / np.sqrt(values.shape[0])
    np.testing.assert_array_less(np.abs(values.mean(0) - exact), 5 * se)
    out["estimate_kl_spread"] = values.mean(0).tolist()
    out["estimate_kl_exact"] = exact.tolist()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
