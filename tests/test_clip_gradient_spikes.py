"""vikl.clip_gradient_spikes: a spike of the gradient norm is scaled down before Adam sees it.

Checked as properties of the transformation on gradient streams whose norms are drawn here
(ordinary ones pass bit for bit, a spike is cut to a small multiple of the recent norms with its
direction kept, the statistics are not moved by it), and in ``fit``: on a target without spikes
the converge-mode default stops at the same step, at the same answer, as the same chain
without the clip.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import vikl
from vikl._optimizers import _scale_by_initial_sd


def _stream(n, d=5, spread=0.3, seed=0):
    """``n`` gradients {"a": (d,), "b": ()} with log-normal norms (sd ``spread``), random directions."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        v = rng.standard_normal(d + 1)
        v *= np.exp(spread * rng.standard_normal()) / np.linalg.norm(v)
        out.append({"a": jnp.asarray(v[:d], jnp.float32), "b": jnp.asarray(v[d], jnp.float32)})
    return out


def _norm(g):
    return float(np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in jax.tree_util.tree_leaves(g))))


def _run(clip, grads):
    state = clip.init(grads[0])
    update = jax.jit(clip.update)
    outs = []
    for g in grads:
        u, state = update(g, state)
        outs.append(u)
    return outs, state


def test_ordinary_gradients_pass_bit_for_bit():
    grads = _stream(400)
    outs, state = _run(vikl.clip_gradient_spikes(), grads)
    assert int(state.num_clipped) == 0 and int(state.count) == 400
    for g, u in zip(grads, outs):
        for x, y in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(u)):
            assert np.array_equal(np.asarray(x), np.asarray(y))
    # The statistics are those of the log norms (exponentially weighted: near the sample's).
    logs = np.log([_norm(g) for g in grads])
    assert abs(float(state.mean) - logs.mean()) < 0.15
    assert 0.5 < float(np.sqrt(state.var)) / logs.std() < 1.6


@pytest.mark.parametrize("size", [1e3, 1e8, 1e30])
def test_a_spike_is_cut_to_a_small_multiple_of_the_recent_norms_direction_kept(size):
    grads = _stream(300)
    spike = jax.tree_util.tree_map(lambda x: x * jnp.float32(size), _stream(1, seed=1)[0])
    after = _stream(5, seed=2)
    outs, state = _run(vikl.clip_gradient_spikes(), grads + [spike] + after)
    typical = np.median([_norm(g) for g in grads[-100:]])
    cut = outs[300]
    assert int(state.num_clipped) == 1
    # at least min_ratio = 10 times the typical norm is let through, at most exp(4 sd) more
    assert 5 * typical < _norm(cut) < 100 * typical
    a = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(spike)])
    b = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(cut)])
    np.testing.assert_allclose(a / np.linalg.norm(a), b / np.linalg.norm(b), atol=1e-6)
    # the spike did not raise the threshold: ordinary gradients after it pass unchanged
    for g, u in zip(after, outs[301:]):
        np.testing.assert_array_equal(np.asarray(g["a"]), np.asarray(u["a"]))


def test_nothing_is_clipped_during_the_warmup_and_a_non_finite_gradient_is_not_repaired():
    grads = _stream(20)
    grads[3] = jax.tree_util.tree_map(lambda x: x * 1e20, grads[3])
    outs, state = _run(vikl.clip_gradient_spikes(warmup=10), grads)
    np.testing.assert_array_equal(np.asarray(outs[3]["a"]), np.asarray(grads[3]["a"]))
    assert int(state.num_clipped) == 0
    bad = {"a": grads[0]["a"].at[0].set(jnp.inf), "b": grads[0]["b"]}
    clip = vikl.clip_gradient_spikes()
    _, state = _run(clip, grads)
    u, after = clip.update(bad, state)
    assert not np.all(np.isfinite(np.asarray(u["a"])))  # still stops the fit as diverged
    # the statistics skip it
    assert float(after.mean) == float(state.mean) and float(after.var) == float(state.var)


def test_jit_and_vmap_agree_with_one_stream_at_a_time():
    clip = vikl.clip_gradient_spikes()
    streams = [_stream(60, seed=s) for s in range(3)]
    for s in streams:
        s[40] = jax.tree_util.tree_map(lambda x: x * 1e6, s[40])
    one = [_run(clip, s) for s in streams]
    stacked = [jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[s[t] for s in streams]) for t in range(60)]
    state = jax.vmap(clip.init)(stacked[0])
    update = jax.jit(jax.vmap(clip.update))
    for t in range(60):
        u, state = update(stacked[t], state)
        for i in range(3):
            np.testing.assert_allclose(np.asarray(u["a"][i]), np.asarray(one[i][0][t]["a"]), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(state.num_clipped), [1, 1, 1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"z": 0.0}, "z must be"),
        ({"z": float("nan")}, "z must be"),
        ({"min_ratio": 1.0}, "min_ratio must be"),
        ({"decay": 1.0}, "decay must be"),
        ({"warmup": 0}, "warmup must be"),
        ({"warmup": 2.5}, "warmup must be"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        vikl.clip_gradient_spikes(**kwargs)


def test_converge_default_without_spikes_is_the_unclipped_chain():
    """On a Gaussian target no gradient is a spike: the default's fit is the fit with the same
    chain minus the clip (the compiled programs differ, so the rounding can differ by an ulp)."""
    target = vikl.MultivariateNormal(
        jnp.array([1.0, -2.0, 0.5]), scale_tril=jnp.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.3, 0.2, 0.5]])
    )
    q0 = vikl.families.full_rank(3, jax.random.key(0))
    kw = dict(key=jax.random.key(1), progress=False, init=None, num_diagnostic_samples=0)
    res = vikl.fit(q0, target, **kw)
    plain = optax.chain(optax.scale_by_adam(), _scale_by_initial_sd(), optax.scale(-1e-2))
    ref = vikl.fit(q0, target, optimizer=plain, **kw)
    clip_state = res.opt_state[0]
    assert int(clip_state.count) == res.num_steps and int(clip_state.num_clipped) == 0
    assert res.num_steps == ref.num_steps and res.converged
    np.testing.assert_allclose(np.asarray(res.losses), np.asarray(ref.losses), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(res.distribution.loc), np.asarray(ref.distribution.loc), rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(res.distribution.scale_tril), np.asarray(ref.distribution.scale_tril), rtol=1e-5, atol=1e-7
    )


def test_summary_reports_clipped_gradients():
    """A clip with thresholds this low cuts most gradients, and the summary says how many; the
    default fit of a Gaussian clips none and the summary has no such line."""
    target = vikl.Normal(jnp.array([1.0, -1.0]), jnp.array([0.5, 2.0]))
    q0 = vikl.Normal(jnp.zeros(2), jnp.ones(2))
    kw = dict(key=jax.random.key(0), progress=False, init=None, num_diagnostic_samples=100, max_steps=300)
    eager = optax.chain(vikl.clip_gradient_spikes(z=1e-3, min_ratio=1.0001, warmup=1), optax.adam(1e-2))
    res = vikl.fit(q0, target, optimizer=eager, **kw)
    n = int(res.opt_state[0].num_clipped)
    assert 0 < n <= res.num_steps
    assert f"gradients:   {n} clipped as spikes" in res.summary()
    plain = vikl.fit(q0, target, **kw)
    assert "clipped as spikes" not in plain.summary()
