"""vikl.fit: the compiled loop, batching, continuation, files, targets, and analytic optima.

Analytic optima (Bishop, PRML §10.1.2 and §10.1.3 discussions; moment matching) are
computed with NumPy from the target's parameters, independently of vikl. Each has a
fast variant here; long, tighter versions are marked ``slow``.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize

import vikl
from vikl import families
from vikl import objectives as O
from vikl._fit import FitDivergedError, FitResult, fit

KEY = jax.random.PRNGKey(0)
Q0 = vikl.Normal(jnp.float32(0.0), jnp.float32(1.0))


def log_p(x):
    """Unnormalized N(3, 2^2)."""
    return -0.5 * ((x - 3.0) / 2.0) ** 2


def _leaves_equal(a, b):
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return len(la) == len(lb) and all(
        np.array_equal(np.asarray(x), np.asarray(y)) and np.asarray(x).dtype == np.asarray(y).dtype
        for x, y in zip(la, lb)
    )


def _results_equal(a, b):
    return (
        np.array_equal(a.losses, b.losses)
        and _leaves_equal(a.params, b.params)
        and _leaves_equal(a.opt_state, b.opt_state)
        and _leaves_equal(a.distribution, b.distribution)
    )


# Long fits share one optimizer object (a new optax object compiles a new program).
SCHED = optax.adam(optax.cosine_decay_schedule(0.05, 1500))


# ----------------------------------------------------------------------------- the loop
def test_progress_bar_does_not_change_the_result(capsys, monkeypatch):
    on = fit(Q0, log_p, num_steps=200, key=KEY, progress=True)
    err = capsys.readouterr().err
    assert "200/200" in err and "loss=" in err
    off = fit(Q0, log_p, num_steps=200, key=KEY, progress=False)
    assert _results_equal(on, off)
    assert on.losses.shape == (200,) and on.num_steps == 200
    # chunks of one step each (a bar refreshed as often as possible): same bits
    monkeypatch.setattr(vikl._fit, "_PROGRESS_SECONDS", 0.0)
    assert _results_equal(on, fit(Q0, log_p, num_steps=200, key=KEY, progress=True))


def test_second_fit_does_not_recompile():
    traces = []

    def counting(q, target, key):
        traces.append(1)  # runs only while JAX traces the objective
        return O.ReverseKL(num_samples=4)(q, target, key)

    fit(Q0, log_p, objective=counting, num_steps=100, key=KEY, progress=False)
    first = len(traces)
    assert first > 0
    q_other = vikl.Normal(jnp.float32(1.0), jnp.float32(0.5))  # same shapes, other values
    fit(q_other, log_p, objective=counting, num_steps=90, key=jax.random.PRNGKey(5), progress=True)
    fit(Q0, log_p, objective=counting, num_steps=100, key=KEY, progress=False)
    assert len(traces) == first


def test_continuation_reproduces_one_run():
    one = fit(Q0, log_p, num_steps=200, key=KEY, progress=False)
    half = fit(Q0, log_p, num_steps=120, key=KEY, progress=False)
    two = fit(half, log_p, num_steps=80, progress=False)
    assert two.num_steps == 200 and _results_equal(one, two)


def test_divergence_raises_with_step_and_last_finite_loss():
    # loss = sqrt(loc) with SGD(1): loc 1 -> 0.5 -> 0.5 - 1/(2 sqrt(0.5)) < 0, NaN at step 2.
    def sqrt_loc(q, target, key):
        return jnp.sqrt(q.loc)

    q0 = vikl.Normal(jnp.float32(1.0), jnp.float32(1.0))
    with pytest.raises(FitDivergedError, match=r"step 2\b.*0\.707107 at step 1") as info:
        fit(q0, log_p, objective=sqrt_loc, optimizer=optax.sgd(1.0), num_steps=50, key=KEY, progress=False)
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert err.step == 2 and err.member is None and math.isnan(err.value)
    np.testing.assert_allclose(err.losses[:2], [1.0, math.sqrt(0.5)], rtol=1e-6)
    with pytest.raises(FitDivergedError, match="batch member 1") as info:
        fit([vikl.Normal(jnp.float32(100.0), jnp.float32(1.0)), q0], log_p, objective=sqrt_loc,
            optimizer=optax.sgd(1.0), num_steps=50, key=KEY, progress=False)
    assert info.value.member == 1


def _sqrt_loc(q, target, key):
    return jnp.sqrt(q.loc)


@pytest.mark.parametrize("chunk_size", [1, 3, None])  # the failing step starts a chunk / is inside one
def test_divergence_keeps_the_last_finite_state(dtype, chunk_size):
    # SGD(1) on sqrt(loc): loc 1 -> 0.5 -> 0.5 - 1/(2 sqrt(0.5)) < 0, whose loss (step 2) is NaN.
    q0 = vikl.Normal(jnp.asarray(1.0, dtype), jnp.asarray(1.5, dtype))
    sgd = optax.sgd(1.0)
    with pytest.raises(FitDivergedError, match=r"the loss is nan at step 2") as info:
        fit(q0, log_p, objective=_sqrt_loc, optimizer=sgd, num_steps=50, key=KEY, progress=False,
            chunk_size=chunk_size)
    err = info.value
    assert err.what == "loss" and err.step == 2
    q = err.last_finite_distribution
    assert isinstance(q, vikl.Normal) and q.loc.dtype == dtype
    # hand-computed loc after two steps; the scale has a zero gradient and stays 1.5
    np.testing.assert_allclose(float(q.loc), 0.5 - 1 / (2 * math.sqrt(0.5)), rtol=4 * np.finfo(dtype).eps)
    assert float(q.scale) == 1.5
    # ... and exactly the state a fit of err.step steps ends in
    ref = fit(q0, log_p, objective=_sqrt_loc, optimizer=sgd, num_steps=err.step, key=KEY, progress=False)
    assert _leaves_equal(err.last_finite_params, ref.params)
    assert _leaves_equal(err.last_finite_distribution, ref.distribution)


def test_divergence_keeps_the_diverged_members_last_finite_state():
    far = vikl.Normal(jnp.float32(100.0), jnp.float32(1.0))
    q0 = vikl.Normal(jnp.float32(1.0), jnp.float32(1.0))
    with pytest.raises(FitDivergedError, match="batch member 1") as info:
        fit([far, q0], log_p, objective=_sqrt_loc, optimizer=optax.sgd(1.0), num_steps=50,
            key=KEY, progress=False, chunk_size=4)
    err = info.value
    assert err.member == 1 and err.step == 2
    assert err.last_finite_distribution.batch_shape == ()
    np.testing.assert_allclose(float(err.last_finite_distribution.loc), 0.5 - math.sqrt(0.5), rtol=1e-6)
    assert np.shape(err.last_finite_params["loc"]) == ()


def test_infinite_parameters_keep_the_parameters_before_the_overflow(dtype):
    # SGD with a huge rate on the loss loc: loc = -t * big after t steps, -inf after the 5th.
    big = float(np.finfo(dtype).max) / 4
    with pytest.raises(FitDivergedError, match="parameters became NaN or infinite at step 4") as info:
        fit(vikl.Normal(jnp.asarray(0.0, dtype), jnp.asarray(1.0, dtype)), log_p,
            objective=lambda q, target, key: q.loc, optimizer=optax.sgd(big), num_steps=10,
            key=KEY, progress=False)
    err = info.value
    assert err.what == "parameters"
    assert float(err.last_finite_distribution.loc) == -4 * big and float(err.last_finite_distribution.scale) == 1.0


def test_diverged_error_states_what_and_survives_pickle():
    import pickle

    err = FitDivergedError(3, 0.25, 1.5, np.array([2.0, 1.5, 1.5, 0.25]), member=2, what="gradient")
    assert err.what == "gradient" and err.last_finite_params is None and err.last_finite_distribution is None
    assert "the gradient became NaN or infinite at step 3 (batch member 2)" in str(err)
    loss = FitDivergedError(1, float("inf"), 2.0, np.array([2.0, np.inf]))
    assert loss.what == "loss" and "the loss is inf at step 1; the last finite loss was 2 at step 0" in str(loss)
    copy = pickle.loads(pickle.dumps(FitDivergedError(
        3, 0.25, 1.5, np.zeros(4), what="parameters", last_finite_distribution=Q0, last_finite_params={"a": 1})))
    assert copy.what == "parameters" and copy.step == 3 and copy.last_finite_params == {"a": 1}
    assert "parameters became NaN" in str(copy) and _leaves_equal(copy.last_finite_distribution, Q0)
    with pytest.raises(ValueError, match=r"what must be one of .*got 'scale'"):
        FitDivergedError(0, 0.0, None, np.zeros(1), what="scale")


def test_batch_of_keys_returns_all_results_and_the_best():
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    res = fit(Q0, log_p, num_steps=200, key=keys, progress=False)
    assert len(res) == 3 and res.losses.shape == (3, 200) and res.khat.shape == (3,)
    single = fit(Q0, log_p, num_steps=200, key=keys[1], progress=False)
    np.testing.assert_allclose(res[1].losses, single.losses, rtol=1e-5)
    np.testing.assert_allclose(res[1].distribution.loc, single.distribution.loc, rtol=1e-5)
    assert res.best_index == int(np.argmin(res.final_loss))
    assert res.best.batch_size is None and res.best.losses.shape == (200,)
    with pytest.raises(TypeError, match="batched"):
        single.best


def test_batches_of_initial_distributions_and_of_targets():
    q0s = [vikl.Normal(jnp.float32(0.0), jnp.float32(1.0)), vikl.Normal(jnp.float32(-1.0), jnp.float32(2.0))]
    targets = [vikl.Normal(jnp.float32(2.0), jnp.float32(0.5)), vikl.Normal(jnp.float32(-3.0), jnp.float32(1.5))]
    res = fit(q0s, targets, objective=O.ReverseKL(gradient="stl"), optimizer=SCHED, num_steps=1500,
              key=KEY, progress=False)
    np.testing.assert_allclose(res.distribution.loc, [2.0, -3.0], atol=2e-3)
    np.testing.assert_allclose(res.distribution.scale, [0.5, 1.5], rtol=2e-3)
    with pytest.raises(ValueError, match="batch sizes differ"):
        fit(q0s, targets[:1] * 3, num_steps=10, key=KEY, progress=False)
    with pytest.raises(ValueError, match="differs in structure"):
        fit([Q0, vikl.Normal(jnp.zeros(2), jnp.ones(2))], log_p, num_steps=10, key=KEY, progress=False)


# ----------------------------------------------------------------------------- files
def test_save_load_round_trip_and_continue(tmp_path):
    res = fit(Q0, log_p, num_steps=120, key=KEY, progress=False)
    path = tmp_path / "fit.npz"
    res.save(path)
    back = FitResult.load(path)
    assert _results_equal(res, back)
    assert np.array_equal(jax.random.key_data(res.key), jax.random.key_data(back.key))
    assert back.num_steps == 120 and back.objective == res.objective
    assert back.khat == res.khat and back.ess == res.ess
    assert back.optimizer is res.optimizer  # the default Adam is recorded by value
    # continuing the loaded result equals continuing the original, bit for bit
    assert _results_equal(fit(res, log_p, num_steps=80, progress=False),
                          fit(back, log_p, num_steps=80, progress=False))


def test_save_load_batched_typed_keys_and_custom_optimizer(tmp_path):
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.02))
    keys = jax.random.split(jax.random.key(3), 2)
    res = fit(Q0, log_p, optimizer=opt, num_steps=50, key=keys, progress=False)
    res.save(tmp_path / "b.npz")
    back = FitResult.load(tmp_path / "b.npz")
    assert _results_equal(res, back) and back.batch_size == 2
    assert np.array_equal(jax.random.key_data(back.key), jax.random.key_data(keys))
    with pytest.raises(ValueError, match="pass optimizer="):
        fit(back, log_p, num_steps=10, progress=False)
    assert _results_equal(fit(res, log_p, num_steps=30, progress=False),
                          fit(back, log_p, optimizer=opt, num_steps=30, progress=False))
    with pytest.raises(ValueError, match="does not match"):
        fit(back, log_p, optimizer=optax.sgd(0.1), num_steps=10, progress=False)


def test_load_refuses_newer_and_foreign_files(tmp_path):
    res = fit(Q0, log_p, num_steps=20, key=KEY, progress=False)
    res.save(tmp_path / "ok.npz")
    with np.load(tmp_path / "ok.npz") as z:
        entries = {k: z[k] for k in z.files}
    meta = str(entries["__vikl_metadata__"])
    entries["__vikl_metadata__"] = np.array(meta.replace('"version": 1', '"version": 99'))
    np.savez(tmp_path / "new.npz", **entries)
    with pytest.raises(ValueError, match="newer than this vikl reads"):
        FitResult.load(tmp_path / "new.npz")
    entries["__vikl_metadata__"] = np.array(meta.replace('"vikl.FitResult"', '"other"'))
    np.savez(tmp_path / "other.npz", **entries)
    with pytest.raises(ValueError, match="format 'other'"):
        FitResult.load(tmp_path / "other.npz")
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a vikl FitResult"):
        FitResult.load(tmp_path / "plain.npz")


# ----------------------------------------------------------------------------- targets, families
class Logistic(vikl.Distribution):
    """A user's family, defined here: logistic(loc, scale). fit needs no change to vikl."""

    loc: jax.Array = vikl.param(vikl.constraints.real)
    scale: jax.Array = vikl.param(vikl.constraints.positive)

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        return self.loc + self.scale * jax.random.logistic(key, shape, self.loc.dtype)

    def log_prob(self, x):
        z = (x - self.loc) / self.scale
        return -z - 2.0 * jax.nn.softplus(-z) - jnp.log(self.scale)


def test_custom_family_fits_and_saves(tmp_path):
    target = lambda x: jax.scipy.stats.logistic.logpdf((x - 1.5) / 0.7) - math.log(0.7)  # noqa: E731
    q0 = Logistic(jnp.float32(0.0), jnp.float32(1.0))
    res = fit(q0, target, objective=O.ReverseKL(gradient="stl"), optimizer=SCHED, num_steps=1500,
              key=KEY, progress=False)
    assert isinstance(res.distribution, Logistic)
    np.testing.assert_allclose([res.distribution.loc, res.distribution.scale], [1.5, 0.7], rtol=2e-3)
    res.save(tmp_path / "c.npz")
    assert isinstance(FitResult.load(tmp_path / "c.npz").distribution, Logistic)


@pytest.mark.parametrize("kind", ["numpyro", "callable"])  # vikl targets: everywhere else
def test_targets(kind):
    if kind == "numpyro":
        dist = pytest.importorskip("numpyro.distributions")
        target = dist.Normal(3.0, 2.0)  # used as is: sample(key, shape) / log_prob
    else:
        target = log_p
    res = fit(Q0, target, objective=O.ReverseKL(gradient="stl"), optimizer=SCHED, num_steps=1500,
              key=KEY, progress=False)
    np.testing.assert_allclose([res.distribution.loc, res.distribution.scale], [3.0, 2.0], rtol=2e-3)
    assert res.khat < 0.5 and res.ess > 0.9 * res.diagnostics.num_samples


def test_numpyro_target_for_forward_kl():
    dist = pytest.importorskip("numpyro.distributions")
    res = fit(Q0, dist.Normal(3.0, 2.0), objective=O.ForwardKL(num_samples=64), optimizer=SCHED,
              num_steps=1500, key=KEY, progress=False)
    np.testing.assert_allclose([res.distribution.loc, res.distribution.scale], [3.0, 2.0], rtol=0.03)


def test_empirical_data_maximum_likelihood():
    data = np.random.default_rng(0).normal(1.0, 2.0, size=(400, 2)).astype(np.float32)
    data[:, 1] = 0.5 * data[:, 1] - 1.0
    target = vikl.Empirical(jnp.asarray(data))
    q0 = families.mean_field(2)
    res = fit(q0, target, objective="forward_kl", optimizer=SCHED, num_steps=1500, key=KEY, progress=False)
    # maximum likelihood: the sample mean and the population (ddof=0) variance
    np.testing.assert_allclose(res.distribution.loc, data.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(res.distribution.scale_diag ** 2, data.var(0), rtol=1e-3)
    assert math.isnan(res.khat)  # no log density: no importance diagnostics
    mini = fit(q0, target, objective=O.ForwardKL(batch_size=32), optimizer=SCHED, num_steps=1500,
               key=KEY, progress=False)
    np.testing.assert_allclose(mini.distribution.loc, data.mean(0), atol=0.05)
    np.testing.assert_allclose(mini.distribution.scale_diag ** 2, data.var(0), rtol=0.1)


def test_categorical_score_function():
    probs = jnp.array([0.1, 0.2, 0.3, 0.4])
    res = fit(families.categorical(4, KEY), vikl.Categorical(probs=probs), objective=O.ReverseKL(num_samples=32),
              optimizer=SCHED, num_steps=1500, key=KEY, progress=False)
    np.testing.assert_allclose(res.distribution.probs, probs, atol=0.02)


@pytest.mark.slow
def test_poisson_score_function():
    res = fit(vikl.Poisson(jnp.float32(1.0)), vikl.Poisson(jnp.float32(4.0)), objective=O.ReverseKL(num_samples=32),
              optimizer=SCHED, num_steps=1500, key=KEY, progress=False)
    np.testing.assert_allclose(res.distribution.rate, 4.0, rtol=0.05)


# ----------------------------------------------------------------------------- analytic optima
def _correlated_target(d, rho=None, seed=0):
    if rho is not None:
        cov = np.array([[1.0, rho], [rho, 1.0]])
    else:
        a = np.random.default_rng(seed).standard_normal((d, d))
        cov = a @ a.T / d + 0.5 * np.eye(d)
    mean = np.linspace(-1.0, 1.0, len(cov))
    target = vikl.MultivariateNormal(jnp.asarray(mean, jnp.float32), covariance_matrix=jnp.asarray(cov, jnp.float32))
    return target, mean, cov


def _bishop_check(d, rho, steps, num_samples, rtol):
    target, mean, cov = _correlated_target(d, rho)
    q0 = families.mean_field(d, scale=1.5)
    opt = optax.adam(optax.cosine_decay_schedule(0.05, steps))
    rkl = fit(q0, target, objective=O.ReverseKL(num_samples=num_samples), optimizer=opt, num_steps=steps,
              key=KEY, progress=False)
    fkl = fit(q0, target, objective=O.ForwardKL(num_samples=num_samples), optimizer=opt, num_steps=steps,
              key=KEY, progress=False)
    precision = np.linalg.inv(cov)
    # Bishop PRML §10.1.2: reverse KL -> variances 1/Lambda_ii; forward KL -> Sigma_ii; means = mean
    np.testing.assert_allclose(rkl.distribution.scale_diag ** 2, 1.0 / np.diag(precision), rtol=rtol)
    np.testing.assert_allclose(fkl.distribution.scale_diag ** 2, np.diag(cov), rtol=rtol)
    np.testing.assert_allclose(rkl.distribution.loc, mean, atol=rtol)
    np.testing.assert_allclose(fkl.distribution.loc, mean, atol=3 * rtol)


def test_mean_field_gaussian_bishop_fast():
    _bishop_check(2, 0.9, 1500, 32, rtol=0.06)


@pytest.mark.slow
def test_mean_field_gaussian_bishop_slow():
    _bishop_check(5, None, 6000, 256, rtol=0.02)


def _two_normals(locs, scales, weights):
    return vikl.Mixture(jnp.log(jnp.asarray(weights, jnp.float32)),
                        vikl.Normal(jnp.asarray(locs, jnp.float32), jnp.asarray(scales, jnp.float32)))


def test_gaussian_fitted_to_a_mixture():
    w, m, s = np.array([0.3, 0.7]), np.array([-2.0, 3.0]), np.array([0.5, 1.0])
    mix_mean = np.sum(w * m)
    mix_var = np.sum(w * (s**2 + m**2)) - mix_mean**2
    res = fit(Q0, _two_normals(m, s, w), objective=O.ForwardKL(num_samples=128), optimizer=SCHED,
              num_steps=1500, key=KEY, progress=False)
    # forward KL = moment matching
    np.testing.assert_allclose(res.distribution.loc, mix_mean, atol=0.05)
    np.testing.assert_allclose(res.distribution.scale ** 2, mix_var, rtol=0.05)
    # reverse KL settles on one mode with that mode's spread (well-separated modes)
    m2, s2 = np.array([-4.0, 4.0]), np.array([0.5, 1.0])
    starts = [vikl.Normal(jnp.float32(-3.0), jnp.float32(1.0)), vikl.Normal(jnp.float32(3.0), jnp.float32(1.0))]
    res = fit(starts, _two_normals(m2, s2, [0.5, 0.5]), objective=O.ReverseKL(gradient="stl"), optimizer=SCHED,
              num_steps=1500, key=KEY, progress=False)
    np.testing.assert_allclose(res.distribution.loc, m2, atol=0.01)
    np.testing.assert_allclose(res.distribution.scale, s2, rtol=0.01)


def _renyi_exact_variance(alpha, mean, cov):
    """Mean-field optimum of the exact VR bound for a Gaussian target (closed-form integral)."""
    lam_p, d, n = np.linalg.inv(cov), len(mean), 1.0 - alpha

    def log_int(log_s2):  # log ∫ p^n q^(1-n) with q = N(mean, diag(exp(log_s2)))
        lam_q = np.diag(np.exp(-log_s2))
        a = n * lam_p + (1 - n) * lam_q
        if np.any(np.linalg.eigvalsh(a) <= 0):
            return np.inf
        norm = -0.5 * n * np.linalg.slogdet(cov)[1] - 0.5 * (1 - n) * np.sum(log_s2)
        return norm - 0.5 * np.linalg.slogdet(a)[1]

    sign = 1.0 if alpha < 0 else -1.0
    r = scipy.optimize.minimize(lambda t: sign * log_int(t) / n, np.full(d, math.log(2.0)),
                                method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12})
    return np.exp(r.x)


@pytest.mark.parametrize(
    "alphas,num_samples,steps,rtol",
    [
        pytest.param((1.0, 0.5, -1.0), 64, 1500, 0.3, id="fast"),
        pytest.param((1.0, 0.75, 0.5, 0.25, -1.0, -2.0), 512, 4000, 0.12, id="slow", marks=pytest.mark.slow),
    ],
)
def test_renyi_variance_rises_as_alpha_falls(alphas, num_samples, steps, rtol):
    target, mean, cov = _correlated_target(2, 0.9)
    q0 = families.mean_field(2, scale=2.0)  # start wide: the alpha < 0 bounds need heavy tails
    opt = SCHED if steps == 1500 else optax.adam(optax.cosine_decay_schedule(0.05, steps))
    variances = []
    for a in alphas:
        res = fit(q0, target, objective=O.Renyi(a, num_samples=num_samples), optimizer=opt, num_steps=steps,
                  key=KEY, progress=False)
        v = np.asarray(res.distribution.scale_diag) ** 2
        exact = 1.0 / np.diag(np.linalg.inv(cov)) if a == 1 else _renyi_exact_variance(a, mean, cov)
        np.testing.assert_allclose(v.mean(), exact.mean(), rtol=rtol)
        variances.append(v.mean())
    assert all(b > a for a, b in zip(variances, variances[1:])), variances


def test_flow_beats_the_mean_field_optimum():
    target, _, cov = _correlated_target(2, 0.9)
    # the mean-field optimum of reverse KL is 0.5 (sum log Lambda_ii + log det Sigma) nats above 0
    kl_mean_field = 0.5 * (np.sum(np.log(np.diag(np.linalg.inv(cov)))) + np.linalg.slogdet(cov)[1])
    flow = families.real_nvp(2, KEY, num_layers=2, hidden_size=8)
    res = fit(flow, target, optimizer=SCHED, num_steps=1500, key=KEY, progress=False)
    assert res.final_loss < 0.5 * kl_mean_field  # a flow captures the correlation


def test_mixture_q_finds_both_modes():
    m2 = np.array([-4.0, 4.0])
    q0 = families.gaussian_mixture(1, 2, jax.random.PRNGKey(3), loc_scale=2.0)
    res = fit(q0, _two_normals(m2, [1.0, 1.0], [0.5, 0.5]), optimizer=SCHED, num_steps=1500, key=KEY,
              progress=False)
    np.testing.assert_allclose(np.sort(res.distribution.components.loc[:, 0]), m2, atol=0.1)
    np.testing.assert_allclose(res.distribution.weights, [0.5, 0.5], atol=0.05)


# ----------------------------------------------------------------------------- arguments
def test_optimizer_forms_and_bad_arguments():
    a = fit(Q0, log_p, optimizer=0.01, num_steps=20, key=KEY, progress=False)
    b = fit(Q0, log_p, num_steps=20, key=KEY, progress=False)
    assert _results_equal(a, b)  # a float is Adam with that learning rate (the default 1e-2)
    fit(Q0, log_p, optimizer=optax.linear_schedule(0.01, 0.0, 20), num_steps=20, key=KEY, progress=False)
    with pytest.raises(ValueError, match="num_steps"):
        fit(Q0, log_p, num_steps=0, key=KEY)
    with pytest.raises(ValueError, match="key is required"):
        fit(Q0, log_p, num_steps=10)
    with pytest.raises(TypeError, match="vikl.Distribution"):
        fit(lambda x: x, log_p, num_steps=10, key=KEY)
    with pytest.raises(ValueError, match="plain function"):
        fit(Q0, log_p, objective=lambda q, t, k: q.loc, num_samples=3, num_steps=10, key=KEY)
    with pytest.raises(TypeError, match="optimizer"):
        fit(Q0, log_p, optimizer="adam", num_steps=10, key=KEY)


def test_float64_fit_keeps_the_dtype():
    with jax.enable_x64(True):
        q0 = vikl.Normal(jnp.float64(0.0), jnp.float64(1.0))
        res = fit(q0, lambda x: -0.5 * (x - 1.0) ** 2, num_steps=50, key=KEY, progress=False)
        assert res.losses.dtype == np.float64 and res.distribution.loc.dtype == jnp.float64
