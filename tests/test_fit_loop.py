"""The fit loop's pieces: fit_init/fit_step, the divergence stop, chunking, Ctrl-C, targets.

References: the public step is checked against ``vikl.fit`` (the same numbers by
construction of the key schedule) and, for a pytree of weights, against NumPy's
least-squares solution; the chunk schedule against hand-worked step counts.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import vikl
from vikl import _fit, _objective_terms, _targets
from vikl import objectives as O

KEY = jax.random.PRNGKey(0)


def log_p(x):
    """Unnormalized N(3, 2^2)."""
    return -0.5 * ((x - 3.0) / 2.0) ** 2


def _q0(dtype):
    return vikl.Normal(jnp.asarray(0.0, dtype), jnp.asarray(1.0, dtype))


def _same(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


# ----------------------------------------------------------------------------- init/step
def test_a_loop_of_fit_step_reproduces_fit(dtype):
    target = vikl.Normal(jnp.asarray(3.0, dtype), jnp.asarray(2.0, dtype))
    opt = optax.adam(0.05)
    res = vikl.fit(_q0(dtype), target, optimizer=opt, num_steps=60, key=KEY, progress=False)

    @jax.jit
    def run(state, target):
        def body(state, _):
            state, loss, _aux = vikl.fit_step(state, target)
            return state, loss
        return jax.lax.scan(body, state, None, length=60)

    state, losses = run(vikl.fit_init(_q0(dtype), optimizer=opt, key=KEY), target)
    assert int(state.step) == 60 and losses.dtype == dtype
    np.testing.assert_array_equal(np.asarray(losses), res.losses)
    assert _same(state.params, res.params) and _same(state.opt_state, res.opt_state)
    assert _same(state.distribution, res.distribution)


def test_fit_step_trains_a_pytree_of_weights_to_least_squares(dtype):
    # Amortized-style use: q0 is a dict of weights and the target is data passed per step.
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 3)).astype(dtype)
    b = (a @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=40)).astype(dtype)

    def sq_loss(w, data, key):
        a, b = data
        r = a @ w["w"] - b
        return jnp.mean(r * r), {"rmse": jnp.sqrt(jnp.mean(r * r))}

    state = vikl.fit_init({"w": jnp.zeros(3, dtype)}, objective=sq_loss, optimizer=0.05, key=KEY)
    step = jax.jit(vikl.fit_step)
    for _ in range(1500):
        state, loss, aux = step(state, (jnp.asarray(a), jnp.asarray(b)))
    want = np.linalg.lstsq(a.astype(np.float64), b.astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(np.asarray(state.distribution["w"]), want, atol=2e-3)
    assert set(aux) == {"rmse"} and np.isfinite(float(loss))


def test_fit_init_rejects_what_it_cannot_train():
    with pytest.raises(TypeError, match="q0 must be a vikl.Distribution or a pytree"):
        vikl.fit_init({"n": jnp.arange(3)}, key=KEY)
    with pytest.raises(TypeError, match="state must be a vikl.FitState"):
        vikl.fit_step({"params": jnp.zeros(3)}, log_p)


# ----------------------------------------------------------------------------- divergence
def _sqrt_target(x):
    return jnp.where(x < 0, 0.0, jnp.sqrt(x)) - 0.5 * x**2


def test_nan_gradient_stops_the_fit_at_its_step(dtype):
    # The loss is finite (the where hides sqrt of a negative draw) but its gradient is NaN.
    with pytest.raises(vikl.FitDivergedError, match=r"gradient became NaN or infinite at step 0") as info:
        vikl.fit(_q0(dtype), _sqrt_target, num_steps=1, key=KEY, progress=False)
    err = info.value
    assert err.step == 0 and err.what == "gradient" and np.isfinite(err.value)
    assert err.losses.shape == (1,)
    # batched: only the member whose draws reach x < 0 diverges
    far = vikl.Normal(jnp.asarray(5.0, dtype), jnp.asarray(0.01, dtype))
    with pytest.raises(vikl.FitDivergedError, match="batch member 1") as info:
        vikl.fit([far, _q0(dtype)], _sqrt_target, num_steps=5, key=KEY, progress=False)
    assert info.value.member == 1 and info.value.step == 0 and info.value.what == "gradient"


def test_infinite_parameters_stop_the_fit(dtype):
    # A finite loss and gradient, but SGD with a huge rate overflows the parameters at step 3.
    big = float(np.finfo(dtype).max) / 4

    def linear(q, target, key):
        return q.loc

    with pytest.raises(vikl.FitDivergedError, match="parameters became NaN or infinite at step 4") as info:
        vikl.fit(_q0(dtype), log_p, objective=linear, optimizer=optax.sgd(big), num_steps=10,
                 key=KEY, progress=False)
    assert info.value.what == "parameters"
    # loc after t steps is -t * big: finite for t <= 4, -inf after the 5th update (step 4)
    np.testing.assert_array_equal(info.value.losses, -big * np.arange(5, dtype=np.float64).astype(dtype))


def test_a_nan_loss_is_still_reported_as_the_loss():
    def sqrt_loc(q, target, key):
        return jnp.sqrt(q.loc)

    with pytest.raises(vikl.FitDivergedError, match=r"the loss is nan at step 2") as info:
        vikl.fit(vikl.Normal(1.0, 1.0), log_p, objective=sqrt_loc, optimizer=optax.sgd(1.0),
                 num_steps=50, key=KEY, progress=False)
    assert info.value.what == "loss"


# ----------------------------------------------------------------------------- chunks, Ctrl-C
def test_chunks_start_at_one_step_and_grow_with_the_measured_rate():
    c = _fit._Chunker(cap=4096, fixed=None, seconds=0.25)
    assert c.take(10**6) == 1  # nothing known yet (the first chunk may compile): one step
    c.update(1, 2.0)  # compile time: a rate of 0.5 steps/s
    assert c.take(10**6) == 1
    c.update(1, 0.017)  # a 17 ms step: 0.25 s is 14 steps
    assert c.take(10**6) == 14
    c.update(14, 14 * 1e-6)  # a fast step: grows at most 64-fold per chunk
    assert c.take(10**6) == 896
    c.update(896, 896 * 1e-6)
    assert c.take(10**6) == 4096 and c.take(7) == 7
    # a rate remembered from an earlier fit of the same program sizes the first chunk
    assert _fit._Chunker(cap=4096, fixed=None, seconds=0.25, rate=1000.0).take(10**6) == 250
    assert _fit._Chunker(cap=4096, fixed=30, seconds=0.25, rate=1000.0).take(10**6) == 30


def test_a_slow_step_gives_short_chunks(monkeypatch):
    def slow_log_p(x):  # about 20 ms per step, on the host
        def sleepy(v):
            time.sleep(0.02)
            return v
        t = jax.pure_callback(sleepy, jax.ShapeDtypeStruct((), jnp.float32),
                              jax.lax.stop_gradient(x), vmap_method="sequential")
        return log_p(x) + 0.0 * t

    seen, real = [], _fit._run_chunk

    def timed(*args):
        t = time.perf_counter()
        out = real(*args)
        jax.block_until_ready(out)
        seen.append((int(args[-1]), time.perf_counter() - t))
        return out

    monkeypatch.setattr(_fit, "_run_chunk", timed)
    obj = O.ReverseKL(num_samples=1, gradient="stl")
    vikl.fit(_q0(jnp.float32), slow_log_p, objective=obj, num_steps=40, key=KEY, progress=False)
    assert seen[0][0] == 1 and sum(m for m, _ in seen) == 40
    assert max(s for _, s in seen[1:]) < 1.0, seen  # Ctrl-C is seen within about a second


def test_ctrl_c_keeps_the_finished_steps_and_continues_exactly(monkeypatch):
    full = vikl.fit(_q0(jnp.float32), log_p, num_steps=50, key=KEY, progress=False, chunk_size=10)
    calls, real = [], _fit._run_chunk

    def interrupted_on_third_chunk(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(_fit, "_run_chunk", interrupted_on_third_chunk)
    with pytest.raises(vikl.FitInterrupted) as info:
        vikl.fit(_q0(jnp.float32), log_p, num_steps=50, key=KEY, progress=True, chunk_size=10)
    part = info.value.result
    assert isinstance(info.value, KeyboardInterrupt)
    assert part.num_steps == 20 and part.losses.shape == (20,)
    np.testing.assert_array_equal(part.losses, full.losses[:20])
    monkeypatch.setattr(_fit, "_run_chunk", real)
    rest = vikl.fit(part, log_p, num_steps=30, progress=False)
    np.testing.assert_array_equal(rest.losses, full.losses)
    assert _same(rest.params, full.params) and _same(rest.opt_state, full.opt_state)


def test_ctrl_c_inside_a_host_callback_of_the_target():
    # The interrupt lands while the target's Python callback runs (JAX wraps it in a runtime
    # error): the fit still stops with the steps of the finished chunks.
    calls = []

    def interrupting(v):
        calls.append(1)
        if len(calls) == 13:
            raise KeyboardInterrupt
        return v

    def callback_log_p(x):
        t = jax.pure_callback(interrupting, jax.ShapeDtypeStruct((), jnp.float32),
                              jax.lax.stop_gradient(x), vmap_method="sequential")
        return log_p(x) + 0.0 * t

    obj = O.ReverseKL(num_samples=1, gradient="stl")
    with pytest.raises(vikl.FitInterrupted) as info:
        vikl.fit(_q0(jnp.float32), callback_log_p, objective=obj, num_steps=50, key=KEY,
                 progress=False, chunk_size=5)
    assert info.value.result.num_steps == 10 and info.value.result.losses.shape == (10,)


def test_ctrl_c_before_the_first_chunk_gives_an_empty_result(monkeypatch):
    def at_once(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(_fit, "_run_chunk", at_once)
    with pytest.raises(vikl.FitInterrupted) as info:
        vikl.fit(_q0(jnp.float32), log_p, num_steps=50, key=KEY, progress=False)
    part = info.value.result
    assert part.num_steps == 0 and part.losses.shape == (0,)
    assert float(part.distribution.loc) == 0.0


# ----------------------------------------------------------------------------- scalar types
def test_numpy_and_jax_scalars_work_like_python_numbers():
    a = vikl.fit(_q0(jnp.float32), log_p, num_steps=np.int64(20), num_samples=np.int64(8),
                 optimizer=np.float32(0.05), key=KEY, progress=False)
    b = vikl.fit(_q0(jnp.float32), log_p, num_steps=20, num_samples=8,
                 optimizer=float(np.float32(0.05)), key=KEY, progress=False)
    np.testing.assert_array_equal(a.losses, b.losses)
    c = vikl.fit(_q0(jnp.float32), log_p, num_steps=jnp.int32(20), optimizer=jnp.float32(0.05),
                 objective=O.ReverseKL(num_samples=np.int32(8)), key=KEY, progress=False)
    np.testing.assert_array_equal(a.losses, c.losses)
    assert O.ReverseKL(num_samples=np.int64(8)) == O.ReverseKL(num_samples=8)
    assert O.IWAE(num_particles=np.int64(4)).num_particles == 4
    assert O.Renyi(alpha=np.float32(0.5)).alpha == 0.5
    assert O.ForwardKL(batch_size=np.int16(5)).batch_size == 5


@pytest.mark.parametrize("bad", [lambda params: None, lambda step: jnp.ones(3), dict])
def test_a_callable_that_is_not_a_schedule_is_rejected(bad):
    with pytest.raises(TypeError, match="optimizer .* is callable but not a schedule"):
        vikl.fit(_q0(jnp.float32), log_p, optimizer=bad, num_steps=5, key=KEY, progress=False)


def test_torch_optimizer_class_is_rejected_clearly():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="optimizer"):
        vikl.fit(_q0(jnp.float32), log_p, optimizer=torch.optim.Adam, num_steps=5, key=KEY,
                 progress=False)


@pytest.mark.parametrize("value", [0.0, -1e-3, float("inf"), float("nan")])
def test_bad_learning_rates(value):
    with pytest.raises(ValueError, match="learning rate must be finite and > 0"):
        vikl.fit(_q0(jnp.float32), log_p, optimizer=np.float32(value), num_steps=5, key=KEY)


def test_bad_counts_name_the_argument():
    with pytest.raises(ValueError, match="fit: num_steps must be an int >= 1"):
        vikl.fit(_q0(jnp.float32), log_p, num_steps=2.0, key=KEY)
    with pytest.raises(ValueError, match="ReverseKL: num_samples must be an int >= 1"):
        O.ReverseKL(num_samples=True)
    with pytest.raises(ValueError, match="IWAE: num_particles"):
        O.IWAE(num_particles=np.float64(4))


# ----------------------------------------------------------------------------- targets
def test_target_kinds():
    emp = vikl.Empirical(jnp.zeros((5, 2)))
    assert _targets.kind_of(emp) is _targets.EMPIRICAL
    assert _targets.kind_of(vikl.Normal(0.0, 1.0)) is _targets.DISTRIBUTION
    assert _targets.kind_of(log_p) is _targets.CALLABLE
    assert not _targets.has_log_prob(emp) and _targets.data(emp).shape == (5, 2)
    assert _targets.has_log_prob(log_p) and not _targets.can_sample(log_p)
    with pytest.raises(ValueError, match="known only by its samples"):
        _targets.log_prob(emp, jnp.zeros((3, 2)))
    with pytest.raises(TypeError, match="target must be"):
        _targets.kind_of(3.0)


class _Scaled:
    """A new kind of target: ``log p(x) = scale * log_density(x)`` (not a Distribution)."""

    def __init__(self, fn, scale):
        self.fn, self.scale = fn, scale


def test_a_new_target_kind_is_one_table_entry(monkeypatch):
    kind = _targets.TargetKind(
        "scaled", lambda t: isinstance(t, _Scaled),
        log_prob=lambda t, x: t.scale * jax.vmap(t.fn)(x))
    monkeypatch.setattr(_targets, "KINDS", (kind,) + _targets.KINDS)
    q0 = _q0(jnp.float32)
    a = vikl.fit(q0, _Scaled(log_p, 1.0), num_steps=30, key=KEY, progress=False)
    b = vikl.fit(q0, log_p, num_steps=30, key=KEY, progress=False)
    np.testing.assert_array_equal(a.losses, b.losses)


def test_reverse_kl_gradients_are_a_table(monkeypatch):
    table = _objective_terms.REVERSE_KL_GRADIENTS
    assert set(table) == {"reparam", "stl", "score"}
    with pytest.raises(ValueError, match="gradient must be"):
        O.ReverseKL(gradient="mine")
    # a new estimator is one function in the table
    monkeypatch.setitem(table, "mine", lambda q, target, key, n, entropy: table["stl"](q, target, key, n, None))
    a = vikl.fit(_q0(jnp.float32), log_p, objective=O.ReverseKL(gradient="mine"), num_steps=20,
                 key=KEY, progress=False)
    b = vikl.fit(_q0(jnp.float32), log_p, objective=O.ReverseKL(gradient="stl"), num_steps=20,
                 key=KEY, progress=False)
    np.testing.assert_array_equal(a.losses, b.losses)


def test_a_family_declares_strata_through_the_base_class():
    q = vikl.Mixture(jnp.zeros(2), vikl.Normal(jnp.array([-1.0, 1.0]), jnp.ones(2)))
    log_w, comps = q.strata()
    np.testing.assert_allclose(np.exp(np.asarray(log_w)), [0.5, 0.5], rtol=1e-6)
    assert comps is q.components and vikl.Normal(0.0, 1.0).strata() is None
