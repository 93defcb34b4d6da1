"""Forward-KL fits to vikl.Empirical data sharded on a forced 4-device CPU mesh.

Run by tests/test_sharding_empirical.py in a subprocess: needs
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` in the environment (JAX fixes the
device count when it starts). Exits non-zero with the failing check's message; prints one
JSON line of measured differences on success. Usage: ``python tests/_sharded_empirical.py DIR``
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
from vikl.objectives import ForwardKL

jax.config.update("jax_numpy_dtype_promotion", "strict")


def _max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def main(folder):
    devices = jax.devices()
    assert len(devices) == 4, f"expected 4 forced host devices, got {len(devices)}"
    mesh = Mesh(np.array(devices), ("data",))
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    rng = np.random.default_rng(0)
    n, d = 512, 3
    x = (rng.normal(size=(n, d)) * np.array([0.5, 1.0, 2.0]) + np.array([1.0, -2.0, 0.5]))
    x = x.astype(np.float32)
    xs = jax.device_put(x, sharding)
    sharded, single = vikl.Empirical(xs), vikl.Empirical(jnp.asarray(x))
    assert sharded.samples.sharding == sharding, "Empirical dropped the samples' sharding"
    q0 = vikl.Normal(jnp.zeros(d), jnp.ones(d))
    kw = dict(optimizer=optax.adam(0.05), num_steps=300, progress=False,
              num_diagnostic_samples=0, chunk_size=300)
    out = {}

    # the loss and gradient of one step: each device sums its share, XLA reduces
    value_and_grad = jax.jit(jax.value_and_grad(lambda q, t, k: ForwardKL()(q, t, k)))
    q = vikl.Normal(jnp.array([0.5, -1.0, 0.0]), jnp.array([0.7, 1.2, 1.5]))
    one = value_and_grad(q, single, jax.random.key(3))
    four = value_and_grad(q, sharded, jax.random.key(3))
    out["step_max_abs_diff"] = max(
        _max_diff(a, b) for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(four)))
    for a, b in zip(jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(four)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
    hlo = value_and_grad.lower(q, sharded, jax.random.key(3)).compile().as_text()
    assert "all-reduce" in hlo, "no cross-device reduction in the compiled full-data step"

    # full-data fits (objective="forward_kl"): sharded = one device = the maximum-likelihood
    # Normal (sample mean, population sd; numpy, float64)
    fit4 = vikl.fit(q0, sharded, objective="forward_kl", key=jax.random.key(1), **kw)
    fit1 = vikl.fit(q0, single, objective="forward_kl", key=jax.random.key(1), **kw)
    assert sharded.samples.sharding == sharding, "the data lost their sharding"
    for f in ("loc", "scale"):
        a, b = getattr(fit1.distribution, f), getattr(fit4.distribution, f)
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-5, err_msg=f)
        out[f"full_fit_max_abs_diff_{f}"] = _max_diff(a, b)
    np.testing.assert_allclose(fit4.losses, fit1.losses, rtol=1e-5, atol=1e-5)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(np.asarray(fit4.distribution.loc), x64.mean(0), atol=2e-3)
    np.testing.assert_allclose(np.asarray(fit4.distribution.scale), x64.std(0), rtol=2e-3)

    # minibatches (uniform indices with replacement, gathered from the sharded samples) and
    # batched restarts (vmap over keys): the same as one device
    keys = jax.random.split(jax.random.key(2), 4)
    obj = ForwardKL(batch_size=64)
    mb4 = vikl.fit(q0, sharded, objective=obj, key=keys, **kw)
    mb1 = vikl.fit(q0, single, objective=obj, key=keys, **kw)
    for f in ("loc", "scale"):
        a, b = getattr(mb1.distribution, f), getattr(mb4.distribution, f)
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5, err_msg=f)
        out[f"minibatch_fit_max_abs_diff_{f}"] = _max_diff(a, b)
    np.testing.assert_allclose(mb4.losses, mb1.losses, rtol=1e-4, atol=1e-4)

    # save / load of the result fitted on sharded data round-trips exactly
    path = f"{folder}/sharded_empirical.npz"
    fit4.save(path)
    back = vikl.FitResult.load(path)
    for f in ("loc", "scale"):
        np.testing.assert_array_equal(np.asarray(getattr(back.distribution, f)),
                                      np.asarray(getattr(fit4.distribution, f)))
    np.testing.assert_array_equal(back.losses, fit4.losses)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
