"""Flow layers (affine / spline couplings, IAF) and the flows built on them (SplineFlow, IAF).

References: jax.jacfwd + slogdet in float64 for every log-det, flowjax's
RationalQuadraticSpline (an independent implementation) for the spline,
finite differences for its derivative, quadrature on a grid for the
normalization, scipy.stats for the identity start.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import vikl
from vikl import bijectors as B
from vikl import families
from vikl.bijectors import _flows as F

KEY = jax.random.PRNGKey(0)
BOUND = 2.0


def _perturbed(tree, seed, size=0.5):
    """``tree`` with every leaf moved by ``size * N(0, 1)`` (a flow's scale kept > 0)."""
    rng = np.random.default_rng(seed)

    def move(path, x):
        x = x + jnp.asarray(size * rng.standard_normal(x.shape), x.dtype)
        return jnp.abs(x) if jax.tree_util.keystr(path).endswith(".scale") else x  # scale > 0

    return jax.tree_util.tree_map_with_path(move, tree)


LAYERS = {
    "affine": lambda d, dt: B.AffineCoupling.initialize(d, KEY, hidden_size=6, dtype=dt),
    "spline": lambda d, dt: B.RationalQuadraticSplineCoupling.initialize(
        d, KEY, hidden_size=6, num_bins=5, bound=BOUND, dtype=dt
    ),
    "iaf": lambda d, dt: B.InverseAutoregressiveAffine.initialize(d, KEY, hidden_size=6, dtype=dt),
}

FLOWS = {
    "spline": lambda d, dt: families.spline_flow(
        d, KEY, num_layers=3, hidden_size=6, num_bins=5, bound=BOUND, scale=1.5, dtype=dt
    ),
    "iaf": lambda d, dt: families.iaf(d, KEY, num_layers=3, hidden_size=6, scale=1.5, dtype=dt),
}


# Weight perturbations that move each layer far from the identity while keeping the spline's
# slopes moderate: where they reach the floor (1e-3) the inverse loses ~3 digits in any code.
SIZE = {"affine": 0.5, "spline": 0.25, "iaf": 0.5}


# Module-level jitted helpers taking the layer / flow (a pytree) as an argument: one compiled
# program per structure, shape and dtype instead of op-by-op dispatch of every call.
_forward_and_log_det = jax.jit(lambda layer, x: layer.forward_and_log_det(x))


@jax.jit
def _log_prob_after_round_trip(q, params, x):
    from vikl._params import constrain

    return constrain(q, params).log_prob(x), q.log_prob(x)


def _points(n, d, dtype, spread=3.0, seed=1):
    """Points that reach well past the spline interval [-BOUND, BOUND] (the linear tails)."""
    return jnp.asarray(spread * np.random.default_rng(seed).standard_normal((n, d)), dtype)


# ----------------------------------------------------------------------------- layers
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_layers_start_as_the_identity(kind, dtype):
    layer = LAYERS[kind](3, dtype)
    x = _points(7, 3, dtype)
    y, ld = jax.jit(layer.forward_and_log_det)(x)
    assert y.dtype == dtype and ld.shape == (7,)
    np.testing.assert_allclose(y, x, rtol=0, atol=20 * np.finfo(dtype).eps)
    np.testing.assert_allclose(ld, 0, atol=20 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dim", [1, 2, 5])
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_inverse_is_exact_also_in_the_tails(kind, dim, dtype):
    layer = _perturbed(LAYERS[kind](dim, dtype), seed=dim, size=SIZE[kind])
    x = _points(64, dim, dtype)
    assert np.mean(np.abs(np.asarray(x)) > BOUND) > 0.3  # many points on the linear tails

    @jax.jit
    def run(layer, x):
        y, ld = layer.forward_and_log_det(x)
        x2, ild = layer.inverse_and_log_det(y)
        y2, _ = layer.forward_and_log_det(layer.inverse(x))
        return y, ld, x2, ild, y2

    y, ld, x2, ild, y2 = run(layer, x)
    assert not np.allclose(y, x, atol=0.05)  # the perturbed layer is far from the identity
    # Inverting loses the digits of the condition number 1 / |dy/dx| (where a spline segment is
    # nearly flat); the bound scales with it, so it still catches any wrong branch or bin.
    cond = np.maximum(1.0, np.exp(-np.asarray(ld, np.float64)))[:, None]
    tol = 2e-5 if dtype == np.float32 else 1e-13
    assert np.all(np.abs(np.asarray(x2) - x) <= tol * cond * (1 + np.abs(x)))
    np.testing.assert_allclose(y2, x, rtol=10 * tol, atol=10 * tol)
    assert np.all(np.abs(ild + ld) <= 10 * tol * cond[:, 0] * (1 + np.abs(ld)))


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_log_det_matches_the_autodiff_jacobian(kind):
    with jax.enable_x64(True):
        layer = _perturbed(LAYERS[kind](4, jnp.float64), seed=3, size=SIZE[kind])
        x = _points(16, 4, jnp.float64)

        @jax.jit
        def run(layer, x):
            y, ld = layer.forward_and_log_det(x)
            jac = jax.vmap(jax.jacfwd(layer.forward))(x)
            return jac, ld, jax.vmap(jax.jacfwd(layer.inverse))(y), layer.inverse_log_det_jacobian(y)

        jac, ld, jac_inv, ild = (np.asarray(a) for a in run(layer, x))
        np.testing.assert_allclose(ld, np.linalg.slogdet(jac)[1], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ild, np.linalg.slogdet(jac_inv)[1], rtol=1e-10, atol=1e-10)
        if kind == "iaf":  # autoregressive: y_i depends on x_j only for j <= i
            assert np.all(np.triu(jac, 1) == 0)
            assert np.all(np.abs(np.tril(jac, -1)).sum(axis=(0, 2))[1:] > 0)  # and does depend on them
        else:  # coupling: the first d // 2 coordinates pass through
            np.testing.assert_array_equal(jac[:, :2, :2], np.broadcast_to(np.eye(2), (16, 2, 2)))
            np.testing.assert_array_equal(jac[:, :2, 2:], 0)


def test_reverse():
    x = jnp.arange(6.0).reshape(2, 3)
    y, ld = B.Reverse().forward_and_log_det(x)
    np.testing.assert_array_equal(y, x[:, ::-1])
    np.testing.assert_array_equal(B.Reverse().inverse(y), x)
    assert ld.shape == (2,) and not np.any(ld)


# ----------------------------------------------------------------------------- the spline itself
_rq_forward = jax.jit(F.rq_spline_forward, static_argnums=4)


def _random_spline(num_bins, dtype, seed):
    raw = jnp.asarray(1.5 * np.random.default_rng(seed).standard_normal((3 * num_bins - 1,)), dtype)
    return F._spline_params(raw, num_bins, BOUND)


@pytest.mark.parametrize("num_bins", [2, 8])
def test_spline_matches_flowjax(num_bins, dtype):
    """Forward, inverse and log-slopes against flowjax's RationalQuadraticSpline, same knots."""
    equinox = pytest.importorskip("equinox")
    paramax = pytest.importorskip("paramax")
    flowjax_bij = pytest.importorskip("flowjax.bijections")
    xk, yk, dk = _random_spline(num_bins, dtype, seed=num_bins)
    ref = paramax.unwrap(flowjax_bij.RationalQuadraticSpline(knots=num_bins - 1, interval=BOUND))
    ref = equinox.tree_at(lambda s: (s.x_pos, s.y_pos, s.derivatives), ref, (xk, yk, dk))
    x = jnp.asarray(np.concatenate([np.linspace(-3, 3, 241), np.asarray(xk)]), dtype)
    y_ref, ld_ref = jax.jit(jax.vmap(ref.transform_and_log_det))(x)
    x_ref, ild_ref = jax.jit(jax.vmap(ref.inverse_and_log_det))(x)
    y, ld = _rq_forward(x, xk, yk, dk, BOUND)
    xi, ild = jax.jit(F.rq_spline_inverse, static_argnums=4)(x, xk, yk, dk, BOUND)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for mine, theirs in [(y, y_ref), (ld, ld_ref), (xi, x_ref), (ild, ild_ref)]:
        np.testing.assert_allclose(mine, theirs, rtol=tol, atol=tol)


def test_spline_is_monotone_and_c1_at_the_knots(dtype):
    xk, yk, dk = _random_spline(6, dtype, seed=7)
    grid = jnp.asarray(np.linspace(-2.5, 2.5, 2001), dtype)
    y, ld = _rq_forward(grid, xk, yk, dk, BOUND)
    assert np.all(np.diff(np.asarray(y, np.float64)) > 0)
    # the spline passes through its knots with the prescribed slopes, from both sides
    eps, rtol = (1e-4, 2e-2) if dtype == np.float32 else (1e-9, 1e-6)
    for side in (-1, 1):
        _, ld_side = _rq_forward(xk + side * eps, xk, yk, dk, BOUND)
        np.testing.assert_allclose(np.exp(ld_side), dk, rtol=rtol)
    y_knots, _ = _rq_forward(xk, xk, yk, dk, BOUND)
    np.testing.assert_allclose(y_knots, yk, rtol=1e-6, atol=1e-6)
    # log-slope against central differences of y (float64)
    with jax.enable_x64(True):
        xk64, yk64, dk64 = (jnp.asarray(a, jnp.float64) for a in (xk, yk, dk))
        g = jnp.asarray(np.linspace(-2.7, 2.7, 541) + 1e-3, jnp.float64)
        h = 1e-6
        fd = (_rq_forward(g + h, xk64, yk64, dk64, BOUND)[0] - _rq_forward(g - h, xk64, yk64, dk64, BOUND)[0]) / (2 * h)
        np.testing.assert_allclose(np.exp(_rq_forward(g, xk64, yk64, dk64, BOUND)[1]), fd, rtol=1e-6)


def test_spline_gradients_are_finite_at_knots_bounds_and_tails(dtype):
    layer = _perturbed(LAYERS["spline"](2, dtype), seed=4)
    x = jnp.asarray([[0.3, -BOUND], [0.3, BOUND], [0.0, 0.0], [1.0, 40.0], [-1.0, -40.0]], dtype)

    def loss(layer, x):
        y, ld = layer.forward_and_log_det(x)
        x2, ild = layer.inverse_and_log_det(x)
        return jnp.sum(y) + jnp.sum(ld) + jnp.sum(x2) + jnp.sum(ild)

    g_layer, g_x = jax.jit(jax.grad(loss, argnums=(0, 1)))(layer, x)
    assert all(np.all(np.isfinite(v)) for v in jax.tree_util.tree_leaves((g_layer, g_x)))


def test_spline_conditioner_starts_with_its_kinks_spread(dtype):
    """Random hidden biases: not positively homogeneous at init, still the identity.

    With zero biases a ReLU conditioner satisfies ``h(c a) = c h(a)`` for ``c > 0``
    (all kinks at the origin); reverse-KL fits of a ring then often stall. The
    hidden layers are recomputed here in numpy (float64) from the weights.
    """
    d, hidden = 4, 64
    layer = B.RationalQuadraticSplineCoupling.initialize(
        d, KEY, hidden_size=hidden, num_bins=5, bound=BOUND, dtype=dtype
    )
    w = {k: np.asarray(v, np.float64) for k, v in layer.weights.items()}
    plain = F.init_mlp(KEY, d // 2, hidden, (d - d // 2) * 14, dtype)
    for name, fan_in in (("b1", d // 2), ("b2", hidden)):
        assert np.all(np.abs(w[name]) <= 1 / math.sqrt(fan_in)) and np.std(w[name]) > 0.1 / math.sqrt(fan_in)
    for name in ("w1", "w2", "w3", "b3"):  # same hidden weights as init_mlp, output layer zero
        np.testing.assert_array_equal(w[name], np.asarray(plain[name], np.float64))
    assert not np.any(w["w3"]) and not np.any(w["b3"])

    def hidden2(a):
        h = np.maximum(a @ w["w1"] + w["b1"], 0)
        return np.maximum(h @ w["w2"] + w["b2"], 0)

    a = np.random.default_rng(0).standard_normal((200, d // 2))
    assert np.max(np.abs(hidden2(3 * a) - 3 * hidden2(a))) > 0.5
    x = _points(9, d, dtype)
    y, ld = _forward_and_log_det(layer, x)
    t = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(y, x, rtol=t, atol=t)
    np.testing.assert_allclose(ld, np.zeros(9), atol=t)


def _ring_log_z(radius, sd):
    """log of the ring's normalizer by quadrature (scipy), independent of any closed form."""
    import scipy.integrate

    val, _ = scipy.integrate.quad(
        lambda r: 2 * math.pi * r * math.exp(-0.5 * ((r - radius) / sd) ** 2),
        0,
        radius + 20 * sd,
        points=[radius],
        epsabs=0,
        epsrel=1e-13,
    )
    return math.log(val)


@pytest.mark.slow
def test_spline_flow_fits_a_ring_on_every_seed():
    """Reverse-KL fits of a thin ring (radius 3, sd 0.3), 5 seeds, flowjax's budget.

    flowjax's coupling RQS flow (knots=8, i.e. 9 bins, interval 6) reaches
    KL 0.024 ... 0.069 on these settings; with zero hidden biases vikl's
    spline flow reached 0.057 ... 0.134 (mean 0.090).
    """
    import optax

    radius, sd = 3.0, 0.3
    log_z = _ring_log_z(radius, sd)

    class Ring:
        def log_prob(self, x):
            r = jnp.sqrt(jnp.sum(x * x, axis=-1))
            return -0.5 * ((r - radius) / sd) ** 2 - jnp.asarray(log_z, x.dtype)

    kls = []
    for seed in range(5):
        k_init, k_fit = jax.random.split(jax.random.key(seed))
        q0 = families.spline_flow(2, k_init, num_layers=4, hidden_size=64, num_bins=9, bound=6.0)
        res = vikl.fit(
            q0,
            Ring().log_prob,
            objective=vikl.objectives.ReverseKL(num_samples=64),
            optimizer=optax.adam(1e-3),
            num_steps=5000,
            key=k_fit,
            progress=False,
        )
        x, log_q = res.distribution.sample_and_log_prob(jax.random.key(9), (20000,))
        kls.append(float(jnp.mean(log_q - Ring().log_prob(x))))  # KL(q || p), p normalized
    assert max(kls) < 0.1 and np.mean(kls) < 0.06, kls


# ----------------------------------------------------------------------------- flows
@pytest.mark.parametrize("kind", sorted(FLOWS))
def test_flows_start_as_the_base_gaussian(kind, dtype):
    q = FLOWS[kind](3, dtype)
    x = _points(5, 3, dtype)
    ref = scipy.stats.norm(0, 1.5).logpdf(np.asarray(x, np.float64)).sum(-1)
    np.testing.assert_allclose(jax.jit(q.log_prob)(x), ref, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("kind", sorted(FLOWS))
def test_log_prob_of_own_samples_matches_the_inverse_pass(kind, dtype):
    """sample_and_log_prob (forward pass only) == log_prob (inverse pass: sequential for IAF)."""
    q = _perturbed(FLOWS[kind](5, dtype), seed=2, size=0.8 * SIZE[kind])

    @jax.jit
    def run(q):
        x, lp = q.sample_and_log_prob(KEY, (64,))
        return x, lp, q.log_prob(x), q.sample(KEY, (64,))

    x, lp, lp_inverse, x_sample = run(q)
    assert x.shape == (64, 5) and lp.shape == (64,) and x.dtype == dtype
    np.testing.assert_array_equal(x_sample, x)
    tol = 2e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(lp_inverse, lp, rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", sorted(FLOWS))
def test_log_prob_matches_change_of_variables(kind):
    with jax.enable_x64(True):
        q = _perturbed(FLOWS[kind](3, jnp.float64), seed=5, size=0.8 * SIZE[kind])
        z = jax.random.normal(KEY, (8, 3), jnp.float64)

        def forward(zi):
            return q.loc + q.scale * q._forward(zi)[0]

        @jax.jit
        def run(z):
            x = jax.vmap(forward)(z)
            return jax.vmap(jax.jacfwd(forward))(z), q.log_prob(x)

        jac, lp = run(z)
        logdet = np.linalg.slogdet(np.asarray(jac))[1]
        ref = scipy.stats.multivariate_normal(np.zeros(3), np.eye(3)).logpdf(np.asarray(z)) - logdet
        np.testing.assert_allclose(lp, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", sorted(FLOWS))
def test_flows_integrate_to_one_in_2d(kind):
    q = _perturbed(FLOWS[kind](2, jnp.float32), seed=6, size=0.6 * SIZE[kind])
    g = np.linspace(-12.0, 12.0, 1201)
    xx, yy = np.meshgrid(g, g)
    pts = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], -1), jnp.float32)
    dens = np.exp(np.asarray(jax.jit(q.log_prob)(pts), np.float64))
    total = dens.sum() * (g[1] - g[0]) ** 2
    assert abs(total - 1.0) < 3e-3, total


def test_realnvp_is_a_chain_of_affine_couplings():
    flow = _perturbed(vikl.RealNVP.initialize(3, KEY, num_layers=2, hidden_size=4), seed=8)
    chain = flow.bijector
    assert isinstance(chain, B.Chain)
    assert [type(b).__name__ for b in chain.bijectors] == ["Reverse", "AffineCoupling"] * 2
    z = jax.random.normal(KEY, (4, 3))
    y, ld = chain.forward_and_log_det(z)
    y_ref, ld_ref = flow._forward(z)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(ld, ld_ref, rtol=1e-6)
    x, lp = flow.sample_and_log_prob(KEY, (4,))
    z2, ild = chain.inverse_and_log_det((x - flow.loc) / flow.scale)
    lp_chain = (
        scipy.stats.norm.logpdf(np.asarray(z2, np.float64)).sum(-1)
        + np.asarray(ild)
        - np.log(np.asarray(flow.scale, np.float64)).sum()
    )
    np.testing.assert_allclose(lp_chain, lp, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(FLOWS))
def test_jit_vmap_grad(kind):
    q = _perturbed(FLOWS[kind](3, jnp.float32), seed=9, size=0.3)
    xs = _points(4, 3, jnp.float32)

    @jax.jit
    def run(q):
        def loss(q):
            x, lp = q.sample_and_log_prob(KEY, (8,))
            return jnp.mean(lp + jnp.sum(x * x, -1)) + jnp.sum(q.log_prob(xs))

        return q.log_prob(xs), jax.vmap(q.log_prob)(xs), jax.grad(loss)(q)

    lp, lp_vmap, grads = run(q)
    np.testing.assert_allclose(lp_vmap, lp, rtol=1e-5, atol=1e-5)
    leaves = jax.tree_util.tree_leaves(grads)
    assert leaves and all(np.all(np.isfinite(v)) for v in leaves)
    assert any(np.any(v != 0) for v in jax.tree_util.tree_leaves(grads.layers))


class _Banana:
    """Normalized banana: x0 ~ N(0, 1), x1 | x0 ~ N(x0^2 / 2, 0.5^2)."""

    def log_prob(self, x):
        x0, x1 = x[..., 0], x[..., 1]
        return -0.5 * x0**2 - 0.5 * ((x1 - 0.5 * x0**2) / 0.5) ** 2 - math.log(0.5) - math.log(2 * math.pi)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(FLOWS))
def test_reverse_kl_fit_of_a_banana_improves_the_kl(kind):
    q0 = FLOWS[kind](2, jnp.float32)
    target = _Banana()
    result = vikl.fit(q0, target.log_prob, num_steps=300, num_samples=64, key=jax.random.PRNGKey(1), progress=False)
    assert type(result.distribution) is type(q0)
    before = vikl.estimate_kl(q0, target, jax.random.PRNGKey(2), 4000)
    after = vikl.estimate_kl(result.distribution, target, jax.random.PRNGKey(2), 4000)
    assert float(after.value) < 0.5 * float(before.value), (before, after)
    assert float(after.value) < 0.2


@pytest.mark.parametrize("kind", sorted(FLOWS))
def test_unconstrained_parameters_are_the_layer_weights(kind):
    """fit trains loc, log scale and every layer weight; constrain(unconstrain(q)) == q."""
    from vikl._params import num_params, unconstrain

    q = _perturbed(FLOWS[kind](3, jnp.float32), seed=10, size=0.3)
    params = unconstrain(q)
    assert sorted(params) == ["layers", "loc", "scale"]
    assert num_params(params) == sum(np.size(x) for x in jax.tree_util.tree_leaves(q))
    x = _points(4, 3, jnp.float32)
    lp_round_trip, lp = _log_prob_after_round_trip(q, params, x)
    np.testing.assert_allclose(lp_round_trip, lp, rtol=1e-6)


@pytest.mark.slow
def test_fitted_flow_saves_and_loads(tmp_path):
    q0 = FLOWS["spline"](2, jnp.float32)
    result = vikl.fit(q0, _Banana().log_prob, num_steps=3, key=jax.random.PRNGKey(1), progress=False)
    result.save(tmp_path / "flow.npz")
    loaded = type(result).load(tmp_path / "flow.npz")
    x = _points(5, 2, jnp.float32)
    np.testing.assert_array_equal(loaded.distribution.log_prob(x), result.distribution.log_prob(x))


# ----------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_with_clear_errors():
    layer = LAYERS["spline"](3, jnp.float32)
    with pytest.raises(ValueError, match=r"event shape of x must be \(3,\)"):
        layer.forward(jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"event shape of y must be \(3,\)"):
        LAYERS["iaf"](3, jnp.float32).inverse(jnp.zeros(4))
    for bad in (1, 2.5, True):
        with pytest.raises(ValueError, match="num_bins"):
            families.spline_flow(2, KEY, num_bins=bad)
    with pytest.raises(ValueError, match="bound must be a finite number > 0"):
        B.RationalQuadraticSplineCoupling.initialize(2, KEY, bound=0.0)
    with pytest.raises(ValueError, match="num_layers"):
        families.iaf(2, KEY, num_layers=0)
    bad_w = dict(layer.weights, w2=layer.weights["w2"].at[0, 1].set(jnp.nan))
    with pytest.raises(ValueError, match=r"RationalQuadraticSplineCoupling: weights\['w2'\] must be finite"):
        B.RationalQuadraticSplineCoupling(bad_w, 3, num_bins=5, bound=BOUND)
    with pytest.raises(ValueError, match=r"weights\['w3'\] must have shape"):
        B.RationalQuadraticSplineCoupling(layer.weights, 3, num_bins=6, bound=BOUND)
    q = FLOWS["spline"](3, jnp.float32)
    bad_layer = jax.tree_util.tree_map(lambda w: w.at[..., 0].set(jnp.inf), q.layers[1])
    with pytest.raises(ValueError, match=r"SplineFlow: layers\[1\]: weights\['w1'\] must be finite"):
        vikl.SplineFlow(q.loc, q.scale, (q.layers[0], bad_layer))
    with pytest.raises(ValueError, match=r"SplineFlow: layers\[0\] acts on dim 2; loc has d = 3"):
        vikl.SplineFlow(q.loc, q.scale, (LAYERS["spline"](2, jnp.float32),))
    with pytest.raises(TypeError, match=r"layers\[0\] must be a RationalQuadraticSplineCoupling"):
        vikl.SplineFlow(q.loc, q.scale, (LAYERS["iaf"](3, jnp.float32),))
    with pytest.raises(ValueError, match="scale must be"):
        vikl.InverseAutoregressiveFlow(q.loc, -q.scale, ())
    with pytest.raises(ValueError, match=r"SplineFlow.log_prob: x must have event shape \(3,\)"):
        q.log_prob(jnp.zeros((2, 1)))
    assert repr(q) == (
        "SplineFlow(dim=3, num_layers=3, hidden_size=6, num_bins=5, bound=2.0, activation='relu', dtype=float32)"
    )
