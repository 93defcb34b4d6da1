"""Initializers: L-BFGS mode, Laplace, Pathfinder, fit's ``for_fit`` and ``optax.lbfgs`` in ``fit``.

References are independent: closed-form Gaussians in NumPy, SciPy's BFGS, NumPy's linear algebra.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize

import vikl
from vikl import _init


def _gaussian(d, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d))
    cov = a @ a.T + 0.5 * np.eye(d)
    return rng.normal(size=d), cov


def _np_kl(m_q, s_q, m_p, s_p):
    """KL(N(m_q, s_q) || N(m_p, s_p)) in NumPy, float64."""
    d = m_q.shape[0]
    inv = np.linalg.inv(s_p)
    diff = m_p - m_q
    return 0.5 * (np.trace(inv @ s_q) + diff @ inv @ diff - d
                  + np.linalg.slogdet(s_p)[1] - np.linalg.slogdet(s_q)[1])


def test_laplace_of_a_gaussian_is_exact_in_each_family():
    with jax.enable_x64(True):
        m, cov = _gaussian(4, seed=4)
        target = vikl.MultivariateNormal(jnp.asarray(m), covariance_matrix=jnp.asarray(cov))
        q, info = _init.laplace(target, jnp.zeros(4), return_info=True)
        np.testing.assert_allclose(np.asarray(q.loc), m, rtol=0, atol=1e-10)
        np.testing.assert_allclose(np.asarray(q.scale_tril @ q.scale_tril.T), cov, rtol=1e-10, atol=1e-12)
        assert info["hessian"] == "exact" and info["num_grad_evals"] < 60
        prec = np.linalg.inv(cov)
        qs = {
            "diag": vikl.MultivariateNormalDiag(jnp.zeros(4), jnp.ones(4)),
            "normal": vikl.Normal(jnp.zeros(4), jnp.ones(4)),
            "lowrank": vikl.LowRankMultivariateNormal(jnp.zeros(4), 0.1 * jnp.ones((4, 2)), jnp.ones(4)),
        }
        for kind, q0 in qs.items():
            qf = _init.to_family(q0, q.loc, q.scale_tril)
            assert type(qf) is type(q0), kind
            np.testing.assert_allclose(np.asarray(qf.loc), m, atol=1e-10)
            if kind in ("diag", "normal"):  # the reverse-KL-optimal diagonal: 1 / sqrt(diag(Σ^-1))
                sd = qf.scale_diag if kind == "diag" else qf.scale
                np.testing.assert_allclose(np.asarray(sd), 1 / np.sqrt(np.diag(prec)), rtol=1e-9)
            else:  # PPCA of Σ: the variances match, the top-2 eigen-directions are spanned
                var = np.sum(np.asarray(qf.cov_factor) ** 2, 1) + np.asarray(qf.cov_diag)
                np.testing.assert_allclose(var, np.diag(cov), rtol=1e-9)
                vec = np.linalg.eigh(cov)[1][:, 2:]
                span = np.linalg.svd(np.asarray(qf.cov_factor), full_matrices=False)[0]
                np.testing.assert_allclose(np.linalg.svd(vec.T @ span)[1], 1.0, rtol=1e-9)


def test_pathfinder_recovers_a_correlated_gaussian():
    with jax.enable_x64(True):
        m, cov = _gaussian(4, seed=1)
        target = vikl.MultivariateNormal(jnp.asarray(m), covariance_matrix=jnp.asarray(cov))
        x0 = jnp.full(4, 5.0)
        q, info = _init.pathfinder(target, x0, jax.random.PRNGKey(3), num_paths=2, num_elbo_draws=64,
                                   return_info=True)
        s_q = np.asarray(q.scale_tril @ q.scale_tril.T)
        kl = _np_kl(np.asarray(q.loc), s_q, m, cov)
        # The start is far (KL > 20 nats); the L-BFGS covariance estimate is approximate.
        assert _np_kl(np.asarray(x0), np.eye(4), m, cov) > 20.0
        assert kl < 0.1, kl
        assert np.max(np.abs(np.asarray(q.loc) - m) / np.sqrt(np.diag(cov))) < 0.05
        assert len(info["path_elbos"]) == 2 and info["elbo"] == max(info["path_elbos"])


def test_find_mode_of_a_logistic_regression_matches_scipy():
    with jax.enable_x64(True):
        rng = np.random.default_rng(2)
        x = rng.normal(size=(200, 4)) * np.array([1.0, 10.0, 0.1, 3.0])
        y = (rng.uniform(size=200) < 1 / (1 + np.exp(-(x @ np.array([1.0, -0.3, 5.0, 0.5]))))) * 1.0

        def logp(w):
            z = jnp.asarray(x) @ w
            return jnp.sum(jnp.asarray(y) * z - jnp.logaddexp(0.0, z)) - 0.5 * jnp.sum(w**2) / 25.0

        def f_np(w):
            z = x @ w
            return -(np.sum(y * z - np.logaddexp(0.0, z)) - 0.5 * np.sum(w**2) / 25.0)

        def g_np(w):
            p = 1 / (1 + np.exp(-(x @ w)))
            return -(x.T @ (y - p) - w / 25.0)

        ref = scipy.optimize.minimize(f_np, np.zeros(4), jac=g_np, method="BFGS", options={"gtol": 1e-10}).x
        mode, info = _init.find_mode(logp, jnp.zeros(4), return_info=True)
        np.testing.assert_allclose(np.asarray(mode), ref, rtol=1e-6, atol=1e-8)
        assert info.num_iters < 100 and info.grad_norm < 1e-4


def test_fit_with_optax_lbfgs_reaches_a_gaussian_target():
    m = np.array([1.0, -2.0, 0.5], np.float32)
    sd = np.array([0.5, 2.0, 1.0], np.float32)
    target = vikl.MultivariateNormalDiag(jnp.asarray(m), jnp.asarray(sd))
    q0 = vikl.MultivariateNormalDiag(jnp.zeros(3), jnp.ones(3))
    objective = vikl.objectives.ReverseKL(num_samples=32, gradient="stl")
    res = vikl.fit(q0, target, objective=objective, optimizer=optax.lbfgs(), num_steps=40,
                   key=jax.random.PRNGKey(0), progress=False, num_diagnostic_samples=0)
    q = res.distribution
    np.testing.assert_allclose(np.asarray(q.loc), m, atol=0.05 * sd.max())
    np.testing.assert_allclose(np.asarray(q.scale_diag), sd, rtol=0.05)
    assert np.all(np.isfinite(np.asarray(res.losses)))


@pytest.mark.slow  # ~20 s (compiles Laplace and Pathfinder); siblings: the two tests above
def test_for_fit_auto_starts_from_the_better_gaussian_and_preconditions():
    m = np.array([3.0, -1.0], np.float32)
    cov = np.array([[1.0, 0.9 * 0.3], [0.9 * 0.3, 0.09]], np.float32)
    target = vikl.MultivariateNormal(jnp.asarray(m), covariance_matrix=jnp.asarray(cov))
    q0 = vikl.MultivariateNormal(jnp.zeros(2), scale_tril=jnp.eye(2))
    q, opt, name = _init.for_fit(q0, target, init="auto", optimizer=None, key=jax.random.PRNGKey(0),
                                 converge=True)
    assert type(q) is vikl.MultivariateNormal and opt is _init.preconditioned_adam()
    assert name == "auto: laplace"  # exact for a Gaussian target
    np.testing.assert_allclose(np.asarray(q.loc), m, atol=1e-3 * np.sqrt(np.diag(cov)).min() + 1e-4)
    np.testing.assert_allclose(np.asarray(q.scale_tril @ q.scale_tril.T), cov, rtol=1e-3, atol=1e-4)



def test_laplace_of_a_second_target_of_the_same_structure_compiles_nothing():
    """The initializer's programs take the target's arrays as arguments (as fit's loop does):
    Laplace of a second Gaussian of the same shapes traces no program, and finds THAT Gaussian."""
    traces, after_first = [], []

    def count(event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_trace_duration":
            traces.append(duration)

    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        with jax.enable_x64(True):
            for seed in (5, 6):
                m, cov = _gaussian(3, seed=seed)
                target = vikl.MultivariateNormal(jnp.asarray(m), covariance_matrix=jnp.asarray(cov))
                q = vikl.laplace(target, jnp.zeros(3))  # mode to |Σ ∇log p| <= 12 sqrt(3) gtol
                np.testing.assert_allclose(np.asarray(q.loc), m, rtol=0, atol=1e-6)
                np.testing.assert_allclose(np.asarray(q.scale_tril @ q.scale_tril.T), cov, rtol=1e-10,
                                           atol=1e-12)
                after_first.append(len(traces))
    finally:
        jax.monitoring.unregister_event_duration_listener(count)
    assert after_first[0] > 0 and after_first[1] == after_first[0]

def test_preconditioned_adam_scales_steps_by_the_initial_sds():
    q0 = vikl.MultivariateNormal(jnp.zeros(2), scale_tril=jnp.array([[3.0, 0.0], [4.0, 1e-3]]))
    opt = _init.preconditioned_adam(0.1)
    params = vikl._params.unconstrain(q0)
    state = opt.init(params)
    ones = jax.tree_util.tree_map(jnp.ones_like, params)
    with jax.numpy_dtype_promotion("standard"):
        updates, _ = opt.update(ones, state, params)
    # Adam's first step is -lr * sign(g); loc steps are scaled by the row norms of scale_tril.
    np.testing.assert_allclose(np.asarray(updates["loc"]), -0.1 * np.array([3.0, np.hypot(4.0, 1e-3)]),
                               rtol=1e-4)
    np.testing.assert_allclose(np.diag(np.asarray(updates["scale_tril"])), [-0.1, -0.1], rtol=1e-4)
    # A tree of another family gets plain Adam.
    plain = opt.init({"w": jnp.ones(3)})
    with jax.numpy_dtype_promotion("standard"):
        upd, _ = opt.update({"w": jnp.ones(3)}, plain, {"w": jnp.ones(3)})
    np.testing.assert_allclose(np.asarray(upd["w"]), -0.1, rtol=1e-4)


def test_for_fit_leaves_what_it_cannot_serve_unchanged_with_auto_and_raises_when_explicit():
    target = vikl.MultivariateNormalDiag(jnp.zeros(2), jnp.ones(2))
    key = jax.random.PRNGKey(0)
    batched = vikl.MultivariateNormalDiag(jnp.zeros((3, 2)), jnp.ones((3, 2)))
    data = vikl.Empirical(jnp.ones((10, 2)))
    q0 = vikl.MultivariateNormalDiag(jnp.zeros(2), jnp.ones(2))
    for q, t in ((batched, target), (q0, data)):
        same, _ = _init.for_fit(q, t, init="auto", optimizer=None, key=key, converge=True)
        assert same is q
        with pytest.raises(_init.InitializationError, match="init='laplace' cannot run"):
            _init.for_fit(q, t, init="laplace", optimizer=None, key=key, converge=True)
    same, opt = _init.for_fit(q0, target, init=None, optimizer=0.05, key=key, converge=True)
    assert same is q0 and opt is vikl._optimizers.default_optimizer(0.05)


def test_fit_checks_init_once_before_any_compiled_work():
    """``init`` is checked by ``fit`` (``_resolve_init``) before anything is traced; ``for_fit``
    only ever sees a checked value."""
    traces = []

    def count(event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_trace_duration":
            traces.append(event)

    q0 = vikl.MultivariateNormalDiag(jnp.zeros(2), jnp.ones(2))
    target = vikl.MultivariateNormalDiag(jnp.ones(2), jnp.ones(2))
    key = jax.random.PRNGKey(0)  # built (and its seeding traced) before the listener starts
    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        for num_steps in (None, 10):
            for bad in ("newton", 3, ["laplace"]):
                with pytest.raises(ValueError, match=r"init must be one of \('auto', 'laplace', "
                                                     r"'pathfinder', 'none'\) or None; got"):
                    vikl.fit(q0, target, init=bad, num_steps=num_steps, key=key, progress=False)
    finally:
        jax.monitoring.unregister_event_duration_listener(count)
    assert traces == []


def test_initialize_never_uses_the_parent_key_beside_its_children(monkeypatch):
    """init="auto": Laplace, Pathfinder and the pick each get their own child of the key."""
    seen = {}
    mu, chol = jnp.zeros(2), jnp.eye(2)

    def fake(name):
        def run(logp, x0, key, *args):
            seen[name] = np.asarray(jax.random.key_data(key) if jnp.issubdtype(
                key.dtype, jax.dtypes.prng_key) else key)
            return (mu, chol, {}) if name != "pick" else 0
        return run

    monkeypatch.setattr(_init, "_laplace", fake("laplace"))
    monkeypatch.setattr(_init, "_pathfinder", fake("pathfinder"))
    monkeypatch.setattr(_init, "_pick", lambda logp, found, key: fake("pick")(logp, None, key))
    key = jax.random.PRNGKey(11)
    q, name = _init._initialize(vikl.MultivariateNormal(jnp.zeros(2), scale_tril=jnp.eye(2)),
                                vikl.MultivariateNormalDiag(jnp.zeros(2), jnp.ones(2)),
                                "laplace+pathfinder", key)
    assert name == "laplace" and set(seen) == {"laplace", "pathfinder", "pick"}
    keys = [tuple(v.ravel().tolist()) for v in seen.values()]
    assert len(set(keys)) == 3 and tuple(np.asarray(key).tolist()) not in keys


def _paired_case(s2_lap, s2_pf, d=10):
    """p = N(0, I_d); Laplace's candidate N(0, s2_lap I), Pathfinder's N(0, s2_pf I)."""
    def logp(u):
        return -0.5 * jnp.sum(u**2) - 0.5 * d * np.log(2 * np.pi)

    found = [(jnp.zeros(d), np.sqrt(s2) * jnp.eye(d)) for s2 in (s2_lap, s2_pf)]
    # ELBO(q) = -KL(q || p) for a normalized p; KL of N(0, s2 I) from N(0, I) in closed form.
    kl = [0.5 * d * (s2 - 1 - np.log(s2)) for s2 in (s2_lap, s2_pf)]
    return logp, found, kl


def test_auto_pick_uses_the_paired_standard_error_of_common_draws():
    """Pathfinder's Gaussian is better by 0.47 nats (closed form); both log weights vary
    (sd 2.2 and 1.8) but their difference on common draws much less (sd 0.45): the
    difference is 8 paired standard errors (0.056), but only 1.3 of the independent-samples
    formula's (0.36), which kept Laplace's worse Gaussian for every key below (measured)."""
    logp, found, kl = _paired_case(2.0, 1.8)
    assert kl[0] - kl[1] > 0.45  # Pathfinder's is the better Gaussian
    keys = jax.random.split(jax.random.PRNGKey(0), 5)
    assert [_init._pick(logp, found, k) for k in keys] == [1] * 5
    # Swapped, Laplace's is better: kept. Identical candidates: Laplace (no win by noise).
    assert [_init._pick(logp, found[::-1], k) for k in keys] == [0] * 5
    assert _init._pick(logp, [found[0], found[0]], keys[0]) == 0


def test_auto_pick_survives_a_heavy_tail_of_log_weights():
    """Laplace's Gaussian here puts 2% of its mass beyond a doubly-exponential wall (log p falls
    by up to 1e23 there), Pathfinder's is the standard-normal target itself. The mean paired
    difference is about ONE of its own standard errors for most keys (the tail drives both), so the
    2-SE rule alone kept Laplace's Gaussian (measured: 8 of these 10 keys); Pathfinder's wins on 45-55 of
    64 draws, which the sign test sees (posteriordb mcycle: Laplace's ELBO -7.5e9, Pathfinder's -718)."""
    def logp(u):
        return -0.5 * jnp.sum(u**2) - jnp.exp(jnp.minimum(30.0 * (u[0] - 3.0), 80.0))

    found = [(jnp.array([0.0, 0.5]), jnp.diag(jnp.array([1.5, 0.6]))), (jnp.zeros(2), jnp.eye(2))]
    lg = _init._LogDensity(logp, (2,))
    keys = [jax.random.PRNGKey(k) for k in range(10)]
    drowned = 0
    for key in keys:
        w_lap, w_pf = (np.asarray(_init._log_weights(lg.spec, lg.leaves, m, c, key), np.float64)
                       for m, c in found)
        diff = w_pf - w_lap
        drowned += np.mean(diff) <= 2 * np.std(diff, ddof=1) / np.sqrt(diff.size)
        assert _init._pick(logp, found, key) == 1
        assert _init._pick(logp, found[::-1], key) == 0
    assert drowned >= 5  # the case the sign test is for, not a win the 2-SE rule saw anyway


def test_auto_starts_from_pathfinder_where_laplace_has_no_proper_mode(monkeypatch):
    """The Hessian at the L-BFGS point of -x0^2 - x1^4 (from x1 = 0) is diag(-2, 0): no
    negative-definite curvature, so Laplace's covariance would be a stand-in; auto takes
    Pathfinder's Gaussian without comparing ELBOs (the comparison is made to prefer Laplace)."""
    def logp(x):
        return -x[0] ** 2 - x[1] ** 4

    monkeypatch.setattr(_init, "_pick", lambda logp, found, key: 0)
    q0 = vikl.MultivariateNormal(jnp.array([1.0, 0.0]), scale_tril=jnp.eye(2))
    q, _, name = _init.for_fit(q0, logp, init="auto", optimizer=None, key=jax.random.PRNGKey(0),
                               converge=True)
    assert name == "auto: pathfinder"
    cov = np.asarray(q.scale_tril @ q.scale_tril.T)
    assert np.all(np.isfinite(cov)) and np.all(np.linalg.eigvalsh(cov) > 0)


def test_bad_inputs_raise_clearly():
    with pytest.raises(_init.InitializationError, match="no log density"):
        _init.laplace(vikl.Empirical(jnp.ones((10, 2))), jnp.zeros(2))
    with pytest.raises(_init.InitializationError, match="log density at x0 is nan"):
        _init.find_mode(lambda x: jnp.sum(jnp.log(x)), -jnp.ones(2))
    with pytest.raises(_init.InitializationError, match="gradient of the log density at x0 is not finite"):
        _init.pathfinder(lambda x: -jnp.sum(x**2) - jnp.sqrt(jnp.abs(x[0])), jnp.zeros(2),
                         jax.random.PRNGKey(0))
    with pytest.raises(_init.InitializationError, match="x0 must be a 1-D"):
        _init.laplace(lambda x: -jnp.sum(x**2), jnp.zeros((2, 2)))
    def lying(x):  # value -|x|^2, gradient +2x: every L-BFGS direction goes uphill
        return -jnp.sum(x**2) + 2.0 * jnp.sum(x**2 - jax.lax.stop_gradient(x**2))

    with pytest.raises(_init.InitializationError, match="made no progress"):
        _init.find_mode(lying, jnp.ones(2))
    with pytest.warns(_init.InitializationWarning, match="failed, starting from q0"):
        q0 = vikl.MultivariateNormalDiag(-jnp.ones(2), jnp.ones(2))
        same, _ = _init.for_fit(q0, lambda x: jnp.sum(jnp.log(x)), init="auto", optimizer=None,
                                key=jax.random.PRNGKey(0), converge=True)
    assert same is q0


@pytest.mark.slow  # ~10 s; sibling: test_laplace_of_a_gaussian_is_exact_in_each_family
def test_laplace_falls_back_to_the_lbfgs_estimate_where_the_hessian_is_singular():
    with jax.enable_x64(True):
        def logp(x):  # mode 0; the Hessian there is diag(-2, 0): not negative definite
            return -x[0] ** 2 - x[1] ** 4

        with pytest.warns(_init.InitializationWarning, match="not negative definite"):
            q, info = _init.laplace(logp, jnp.array([1.0, 0.0]), return_info=True)  # x1 stays 0
        assert info["hessian"] == "lbfgs"
        cov = np.asarray(q.scale_tril @ q.scale_tril.T)
        assert np.all(np.isfinite(cov)) and np.all(np.linalg.eigvalsh(cov) > 0)
        np.testing.assert_allclose(np.asarray(q.loc), [0.0, 0.0], atol=1e-6)
