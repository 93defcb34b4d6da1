"""One table of example distributions that drives the generic tests.

``EXAMPLES[name]`` holds two constructors, the "p" and the "q" role, with
parameters chosen so that KL(p‖q) is finite whenever the supports allow it
(``Uniform``'s p example lies inside every bounded support used here). Gaussian
vector families have a 3-d example and a 1-d one (``dim1``) for the pairs
with the scalar ``Normal``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import vikl


def _tril(d, seed, scale=0.3):
    rng = np.random.default_rng(seed)
    a = np.tril(scale * rng.standard_normal((d, d)), -1)
    return a + np.diag(rng.uniform(0.6, 1.4, d))


def _vec(values):
    return jnp.asarray(np.asarray(values, dtype=np.float64), dtype=jnp.zeros(()).dtype)


def _mat(values):
    return _vec(values)


def _gaussian_examples(d):
    loc_p = _vec(np.linspace(-0.3, 0.4, d))
    loc_q = _vec(np.linspace(0.2, -0.1, d))
    return {
        "MultivariateNormalDiag": (
            lambda: vikl.MultivariateNormalDiag(loc_p, _vec(np.linspace(0.8, 1.3, d))),
            lambda: vikl.MultivariateNormalDiag(loc_q, _vec(np.linspace(1.1, 0.9, d))),
        ),
        "MultivariateNormal": (
            lambda: vikl.MultivariateNormal(loc_p, scale_tril=_mat(_tril(d, 1))),
            lambda: vikl.MultivariateNormal(loc_q, scale_tril=_mat(_tril(d, 2))),
        ),
        "LowRankMultivariateNormal": (
            lambda: vikl.LowRankMultivariateNormal(
                loc_p, _mat(0.4 * np.random.default_rng(3).standard_normal((d, 2))), _vec(np.linspace(0.7, 1.2, d))
            ),
            lambda: vikl.LowRankMultivariateNormal(
                loc_q, _mat(0.3 * np.random.default_rng(4).standard_normal((d, 2))), _vec(np.linspace(1.0, 0.8, d))
            ),
        ),
    }


EXAMPLES = {
    "Normal": (lambda: vikl.Normal(0.3, 1.2), lambda: vikl.Normal(-0.2, 0.8)),
    "Laplace": (lambda: vikl.Laplace(0.1, 0.9), lambda: vikl.Laplace(-0.3, 1.4)),
    "StudentT": (lambda: vikl.StudentT(6.0, 0.1, 1.1), lambda: vikl.StudentT(4.5, -0.2, 0.9)),
    "Cauchy": (lambda: vikl.Cauchy(0.2, 1.1), lambda: vikl.Cauchy(-0.5, 0.7)),
    "Exponential": (lambda: vikl.Exponential(1.3), lambda: vikl.Exponential(0.6)),
    "Gamma": (lambda: vikl.Gamma(2.5, 1.5), lambda: vikl.Gamma(1.7, 0.8)),
    "Beta": (lambda: vikl.Beta(2.0, 3.0), lambda: vikl.Beta(1.5, 1.2)),
    "Uniform": (lambda: vikl.Uniform(0.2, 0.8), lambda: vikl.Uniform(0.1, 1.0)),
    "LogNormal": (lambda: vikl.LogNormal(0.1, 0.6), lambda: vikl.LogNormal(-0.2, 0.9)),
    "HalfNormal": (lambda: vikl.HalfNormal(1.3), lambda: vikl.HalfNormal(0.8)),
    "Transformed": (  # a log-normal as Normal pushed through Exp (KLs with LogNormal too)
        lambda: vikl.Transformed(vikl.Normal(0.3, 0.7), vikl.bijectors.Exp()),
        lambda: vikl.Transformed(vikl.Normal(-0.1, 1.1), vikl.bijectors.Exp()),
    ),
    "Gumbel": (lambda: vikl.Gumbel(0.2, 1.1), lambda: vikl.Gumbel(-0.4, 0.8)),
    "Dirichlet": (
        lambda: vikl.Dirichlet(_vec([1.5, 2.0, 3.0])),
        lambda: vikl.Dirichlet(_vec([2.0, 1.0, 1.5])),
    ),
    "Categorical": (
        lambda: vikl.Categorical(probs=_vec([0.2, 0.3, 0.5])),
        lambda: vikl.Categorical(probs=_vec([0.4, 0.4, 0.2])),
    ),
    "Bernoulli": (lambda: vikl.Bernoulli(probs=0.3), lambda: vikl.Bernoulli(probs=0.6)),
    "Poisson": (lambda: vikl.Poisson(2.5), lambda: vikl.Poisson(1.5)),
    "Binomial": (
        lambda: vikl.Binomial(10.0, probs=0.3),
        lambda: vikl.Binomial(10.0, probs=0.5),
    ),
    "Geometric": (lambda: vikl.Geometric(probs=0.3), lambda: vikl.Geometric(probs=0.5)),
    **_gaussian_examples(3),
}

EXAMPLES_DIM1 = _gaussian_examples(1)

GAUSSIAN_VECTOR = set(EXAMPLES_DIM1)


def registered_pairs():
    """Every registered ``(P, Q)`` KL pair, sorted by name (a stable parametrization order)."""
    return sorted(vikl.registered_kl_pairs(), key=lambda pq: (pq[0].__name__, pq[1].__name__))


def pair_id(pq):
    """The pytest id of a ``(P, Q)`` pair: ``"P-Q"``."""
    return f"{pq[0].__name__}-{pq[1].__name__}"


def example_pair(type_p: type, type_q: type):
    """Instances (p, q) of the two (registered) types, or None if the table lacks one."""
    names = [c.__name__ for c in (type_p, type_q)]
    table = EXAMPLES
    if "Normal" in names and GAUSSIAN_VECTOR & set(names):
        table = {**EXAMPLES, **EXAMPLES_DIM1}
    if names[0] not in table or names[1] not in table:
        return None
    return table[names[0]][0](), table[names[1]][1]()
