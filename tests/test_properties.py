"""Hypothesis properties of the information measures.

* KL(p‖q) >= 0 and KL(p‖p) = 0 for every family with a closed-form pair;
* H(p, q) = H(p) + KL(p‖q) on probability arrays (three separate formulas);
* for distributions, the Monte-Carlo cross-entropy −E_p[log q(X)] agrees with
  H(p) + KL(p‖q) within 5 standard errors (an independent route to both).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vikl

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

pos = st.floats(0.05, 20.0)
real = st.floats(-10.0, 10.0)
unit = st.floats(0.01, 0.99)


def _probs(k):
    return st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k).filter(lambda v: sum(v) > 1e-3)


def _normalize(v):
    v = np.asarray(v, np.float64)
    return v / v.sum()


# family -> strategy of constructors (each draw gives one distribution)
FAMILIES = {
    "Normal": st.builds(lambda m, s: vikl.Normal(m, s), real, pos),
    "Laplace": st.builds(lambda m, s: vikl.Laplace(m, s), real, pos),
    "Cauchy": st.builds(lambda m, s: vikl.Cauchy(m, s), real, pos),
    "Exponential": st.builds(lambda r: vikl.Exponential(r), pos),
    "Gamma": st.builds(lambda a, b: vikl.Gamma(a, b), pos, pos),
    "Beta": st.builds(lambda a, b: vikl.Beta(a, b), pos, pos),
    "LogNormal": st.builds(lambda m, s: vikl.LogNormal(m, s), real, pos),
    "HalfNormal": st.builds(lambda s: vikl.HalfNormal(s), pos),
    "Gumbel": st.builds(lambda m, s: vikl.Gumbel(m, s), real, pos),
    "Poisson": st.builds(lambda r: vikl.Poisson(r), pos),
    "Bernoulli": st.builds(lambda p: vikl.Bernoulli(probs=p), unit),
    "Geometric": st.builds(lambda p: vikl.Geometric(probs=p), unit),
    "Binomial": st.builds(lambda p: vikl.Binomial(12.0, probs=p), unit),
    "Categorical": st.builds(lambda v: vikl.Categorical(probs=jnp.asarray(_normalize(v), jnp.float32)), _probs(4)),
    "Dirichlet": st.builds(
        lambda v: vikl.Dirichlet(jnp.asarray(v, jnp.float32)), st.lists(pos, min_size=3, max_size=3)
    ),
    "MultivariateNormalDiag": st.builds(
        lambda m, s: vikl.MultivariateNormalDiag(jnp.asarray(m, jnp.float32), jnp.asarray(s, jnp.float32)),
        st.lists(real, min_size=3, max_size=3),
        st.lists(pos, min_size=3, max_size=3),
    ),
    "MultivariateNormal": st.builds(
        lambda m, entries: vikl.MultivariateNormal(
            jnp.asarray(m, jnp.float32),
            scale_tril=jnp.asarray(
                np.tril(np.reshape(entries, (3, 3)), -1) * 0.5
                + np.diag(np.abs(np.diag(np.reshape(entries, (3, 3)))) + 0.1),
                jnp.float32,
            ),
        ),
        st.lists(real, min_size=3, max_size=3),
        st.lists(st.floats(-3.0, 3.0), min_size=9, max_size=9),
    ),
}


def _available():
    return [name for name in FAMILIES if hasattr(vikl, name)]


def _rel_scale(*vals):
    return max([1.0] + [abs(float(v)) for v in vals if np.isfinite(float(v))])


# Compiled once per family (every example has the same shapes): running the
# closed forms op by op costs far more than the one compilation.
_kl_jit = jax.jit(vikl.kl_divergence)


@pytest.mark.parametrize("name", _available())
def test_kl_nonnegative_and_zero_on_the_diagonal(name):
    strategy = FAMILIES[name]

    @SETTINGS
    @given(strategy, strategy)
    def check(p, q):
        kl_pq = float(_kl_jit(p, q))
        kl_pp = float(_kl_jit(p, p))
        assert not np.isnan(kl_pq)
        # float32 round-off on the order of eps times the terms' size
        assert kl_pq >= -1e-5 * _rel_scale(kl_pq)
        assert abs(kl_pp) <= 1e-6
        if name not in ("Dirichlet",):  # Dirichlet KL(p‖p) uses digamma terms that cancel to ~1 ulp
            assert kl_pp >= 0

    check()


@SETTINGS
@given(_probs(5), _probs(5))
def test_cross_entropy_is_entropy_plus_kl_on_arrays(a, b):
    p = jnp.asarray(_normalize(a), jnp.float32)
    q = jnp.asarray(_normalize(b), jnp.float32)
    h_pq = float(vikl.cross_entropy(p, q))
    h_p = float(vikl.entropy(p))
    kl = float(vikl.kl_divergence(p, q))
    if np.isinf(h_pq):
        assert np.isinf(kl)
    else:
        assert h_pq == pytest.approx(h_p + kl, rel=1e-5, abs=1e-5)
    # In bits the same identity holds, scaled by 1/log 2.
    if np.isfinite(h_pq):
        assert float(vikl.cross_entropy(p, q, base=2)) == pytest.approx(h_pq / np.log(2), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("name", [n for n in _available() if n not in ("Categorical",)])
def test_monte_carlo_cross_entropy_matches_entropy_plus_kl(name):
    from tests.families import EXAMPLES

    p, q = EXAMPLES[name][0](), EXAMPLES[name][1]()
    try:
        h_p = p.entropy()
    except NotImplementedError:
        pytest.skip(f"{name} has no closed-form entropy")
    closed = float(h_p + vikl.kl_divergence(p, q))
    x = p.sample(jax.random.PRNGKey(11), (200_000,))
    t = -np.asarray(q.log_prob(x), np.float64)
    mc, se = t.mean(), t.std(ddof=1) / np.sqrt(t.size)
    assert abs(mc - closed) <= 5 * se + 1e-5 * abs(closed)
