"""The flow benchmark (benchmarks/flows.py): its targets are normalized, and a smoke run."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("flowjax")
from benchmarks import flows  # noqa: E402


def _grid_integral(log_p, x1, x2_of, u):
    """Trapezoid integral of exp(log_p) over (x1, x2 = x2_of(x1, u)), with the Jacobian
    of the change of variables u -> x2 taken by finite differences of x2_of."""
    a, b = jnp.meshgrid(x1, u, indexing="ij")
    x2 = x2_of(a, b)
    dens = jnp.exp(jax.vmap(jax.vmap(lambda s, t: log_p(jnp.stack([s, t]))))(a, x2))
    jac = jnp.gradient(x2, u, axis=1)
    inner = np.trapezoid(np.asarray(dens * jac, np.float64), np.asarray(u, np.float64), axis=1)
    return float(np.trapezoid(inner, np.asarray(x1, np.float64)))


def test_banana_is_normalized(dtype):
    # x2 = 0.5 x1^2 - 2 + u puts the conditional's mass on a fixed u grid
    x1 = jnp.linspace(-16.0, 16.0, 801, dtype=dtype)
    u = jnp.linspace(-9.0, 9.0, 451, dtype=dtype)
    total = _grid_integral(flows.banana, x1, lambda a, b: 0.5 * a**2 - 2.0 + b, u)
    assert abs(total - 1.0) < (1e-5 if dtype == np.float64 else 1e-4)


def test_funnel2_is_normalized(dtype):
    # x1 = exp(v / 2) u follows the funnel's neck and mouth
    v = jnp.linspace(-27.0, 27.0, 1351, dtype=dtype)
    u = jnp.linspace(-9.0, 9.0, 451, dtype=dtype)
    total = _grid_integral(flows.funnel, v, lambda a, b: jnp.exp(0.5 * a) * b, u)
    assert abs(total - 1.0) < (1e-5 if dtype == np.float64 else 1e-4)


def test_target_definitions_match_scipy(dtype):
    # the densities BENCH_PROBLEMS.md FL1 states, written with scipy.stats at random points
    from scipy import stats

    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 10)) * np.r_[3.0, np.ones(9)]
    funnel_ref = stats.norm.logpdf(x[:, 0], 0, 3) + np.sum(
        stats.norm.logpdf(x[:, 1:], 0, np.exp(x[:, :1] / 2)), axis=1)
    y = rng.standard_normal((50, 2)) * [2.0, 1.0] + [0.0, 1.0]
    banana_ref = stats.norm.logpdf(y[:, 0], 0, 2) + stats.norm.logpdf(y[:, 1], 0.5 * y[:, 0] ** 2 - 2, 1)
    radius = np.hypot(y[:, 0], y[:, 1])
    ring_ref = stats.norm.logpdf(radius, 3, 0.3) + 0.5 * math.log(2 * math.pi * 0.09) - flows.RING_LOG_Z
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-4)
    for fn, pts, ref in ((flows.funnel, x, funnel_ref), (flows.funnel, x[:, :2], funnel_ref - np.sum(
            stats.norm.logpdf(x[:, 2:], 0, np.exp(x[:, :1] / 2)), axis=1)),
            (flows.banana, y, banana_ref), (flows.ring, y, ring_ref)):
        got = np.asarray(jax.vmap(fn)(jnp.asarray(pts, dtype)), np.float64)
        np.testing.assert_allclose(got, ref, **tol)


def test_ring_is_normalized(dtype):
    assert flows.check_ring_normalizer() < 1e-12  # closed form vs scipy quadrature
    # polar coordinates: x = (r cos t, r sin t), Jacobian r, integrated on a grid
    r = jnp.linspace(1e-6, 6.0, 1501, dtype=dtype)
    t = jnp.linspace(0.0, 2 * math.pi, 181, dtype=dtype)
    rr, tt = jnp.meshgrid(r, t, indexing="ij")
    pts = jnp.stack([rr * jnp.cos(tt), rr * jnp.sin(tt)], -1)
    dens = np.asarray(jnp.exp(jax.vmap(jax.vmap(flows.ring))(pts)) * rr, np.float64)
    total = np.trapezoid(np.trapezoid(dens, np.asarray(t, np.float64), axis=1), np.asarray(r, np.float64))
    assert abs(total - 1.0) < (1e-6 if dtype == np.float64 else 1e-4)


@pytest.mark.slow  # compiles six flows (about a minute on 2 cores)
def test_flows_quick_run(tmp_path):
    out = tmp_path / "flows.md"
    # the suite runs with strict dtype promotion; optax.adam's bias correction inside the
    # flowjax peer's loop (float ** int32 step count) needs standard promotion
    with jax.numpy_dtype_promotion("standard"):
        summary = flows.main(["--quick", "--steps", "30", "--draws", "1000", "--out", str(out)])
    text = out.read_text()
    assert "machine:" in text and "### vikl / flowjax" in text
    assert (tmp_path / "flows.json").exists()
    libraries = {s["library"] for s in summary}
    assert libraries == {"vikl", "flowjax"}
    for s in summary:
        # p is normalized, so KL(q||p) >= 0 up to Monte-Carlo error; each flow's log q of
        # its own draws matches its log_prob (the density the KL relies on)
        assert math.isfinite(s["kl_mean"]) and s["kl_mean"] > -5 * s["se_max"], s
        assert s["logq_gap_max"] < 1e-3, s
        assert s["us_per_step"] > 0 and s["num_params"] > 0
