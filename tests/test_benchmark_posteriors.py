"""The real-posterior benchmark (benchmarks/posteriors.py): its ELBO and moment evaluator, its
time-to-accuracy bookkeeping, its gradient counter, and a --quick smoke run on one posterior.

References: the closed-form KL between Gaussians (NumPy, float64) for the Monte-Carlo ELBO,
``jax.scipy.stats.multivariate_normal`` for the target density, hand-worked checkpoint lists.
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import posteriordb as pdb
from benchmarks import posteriors as bp


class _GaussianPosterior:
    """Duck-typed stand-in for a posteriordb Posterior: a normalized N(m, S) on R^d."""

    def __init__(self, m, s):
        self.m, self.s, self.dim = m, s, m.shape[0]
        self.ref_mean, self.ref_sd = m, np.sqrt(np.diag(s))

    def logdensity(self, u):
        return jax.scipy.stats.multivariate_normal.logpdf(u, jnp.asarray(self.m), jnp.asarray(self.s))

    def constrain(self, u):
        return {"x": u}

    def flatten(self, params):
        return params["x"]


def _kl_gauss(mu, lq, m, s):
    """KL(N(mu, Lq Lq^T) || N(m, S)), float64 NumPy closed form."""
    cov = lq @ lq.T
    sinv = np.linalg.inv(s)
    diff = m - mu
    return 0.5 * (np.trace(sinv @ cov) + diff @ sinv @ diff - len(m) + np.linalg.slogdet(s)[1]
                  - np.linalg.slogdet(cov)[1])  # fmt: skip


def _target(d=3):
    rng = np.random.default_rng(7)
    a = rng.standard_normal((d, d))
    return rng.standard_normal(d), a @ a.T / d + 0.5 * np.eye(d)


def test_evaluator_exact_when_q_is_the_target():
    m, s = _target()
    with jax.enable_x64(True):
        ev = bp.Evaluator(_GaussianPosterior(m, s), num_draws=4000)
        out = ev.gaussian(m, np.linalg.cholesky(s))
    assert abs(out["elbo"]) < 1e-9  # log w = 0 for every draw
    se = 5 / math.sqrt(4000)
    assert out["mean_err"] < se
    assert 1 - se < out["sd_lo"] <= out["sd_hi"] < 1 + se
    assert out["khat"] < 0.5


def test_evaluator_elbo_matches_closed_form_kl():
    m, s = _target()
    mu = m + np.array([0.3, -0.2, 0.1])
    lq = np.diag([0.6, 1.3, 0.9])
    with jax.enable_x64(True):
        ev = bp.Evaluator(_GaussianPosterior(m, s), num_draws=4000)
        z, logq = ev._gaussian(jnp.asarray(mu), jnp.asarray(lq))
        log_w = np.asarray(jax.vmap(ev.post.logdensity)(z)) - np.asarray(logq)
        out = ev.gaussian(mu, np.diag(lq))  # a mean-field q given by its scale vector
    exact = -_kl_gauss(mu, lq, m, s)
    assert abs(out["elbo"] - exact) < 5 * np.std(log_w) / math.sqrt(4000)
    assert out["elbo"] != pytest.approx(0.0, abs=0.05)  # the test can tell q from p
    np.testing.assert_allclose(out["mean_err"], np.max(np.abs(mu - m) / np.sqrt(np.diag(s))), atol=0.1)


def test_checkpoint_grid_and_time_to_accuracy():
    assert bp.checkpoint_grid(200) == [25, 50, 100, 175, 200]
    assert bp.checkpoint_grid(10) == [10]
    assert bp.checkpoint_grid(1000)[-1] == 1000
    cps = [{"elbo": -9.0, "grads": 1, "seconds": 0.1}, {"elbo": float("-inf"), "grads": 2, "seconds": 0.2},
           {"elbo": -5.05, "grads": 3, "seconds": 0.3}, {"elbo": -4.0, "grads": 4, "seconds": 0.4}]
    assert bp.time_to_accuracy(cps, best=-5.0) == (3, 0.3)
    assert bp.time_to_accuracy(cps, best=-3.0) == (None, None)


def test_grad_counter_counts_points_under_vmap_and_loops():
    counter = bp.GradCounter(lambda x: -0.5 * jnp.sum(x**2))
    g = jax.jit(jax.vmap(jax.grad(counter.logdensity)))(jnp.ones((16, 3)))
    jax.block_until_ready(g)
    assert counter.count == 16
    np.testing.assert_allclose(g, -np.ones((16, 3)))

    def descend(x):
        step = lambda i, y: y + 0.1 * jax.grad(counter.logdensity)(y)  # noqa: E731
        return jax.lax.fori_loop(0, 7, step, x)

    jax.block_until_ready(jax.jit(descend)(jnp.ones(3)))
    assert counter.count == 16 + 7


def test_quick_run_one_posterior(tmp_path):
    try:
        pdb.posteriordb_dir()
    except FileNotFoundError as err:
        pytest.skip(f"posteriordb data folder absent (CI clones the repository alone): {err}")
    cache, out = tmp_path / "cache.json", tmp_path / "out.md"
    args = ["--quick", "--posteriors", "kidiq-kidscore_momiq", "--methods", "vikl Adam FR", "--dtypes", "float64",
            "--steps", "50", "--ref-factor", "0", "--draws", "500", "--cache", str(cache), "--out", str(out)]
    rows = bp.main(args)
    assert len(rows) == 1 and rows[0][3] == "vikl Adam FR"
    text = out.read_text()
    assert "machine:" in text and "kidiq-kidscore_momiq" in text and "command: python -m benchmarks.posteriors" in text
    runs = json.loads(cache.read_text())["runs"]
    (rec,) = runs.values()
    assert [c["steps"] for c in rec["checkpoints"]] == [25, 50]
    assert [c["grads"] for c in rec["checkpoints"]] == [25 * 16, 50 * 16]
    assert all(c["seconds"] > 0 for c in rec["checkpoints"])
    # 50 Adam steps from scale 1 leave this uncentred regression far from its optimum
    assert rec["final"]["mean_err"] > 1.0
    assert bp.main(args[:-4] + ["--report", "--cache", str(cache), "--out", ""]) == rows  # from the cache
