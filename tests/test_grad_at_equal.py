"""Gradients of every registered closed-form KL: finite everywhere, and 0 at ``p = q``.

``KL(p‖q) >= 0`` with equality at ``p = q``, so ``p = q`` is a minimum and the
gradient with respect to every parameter of either argument is exactly 0 there
(the reference needs no formula). A closed form that divides 0 by 0 on the way
(e.g. ``log1p(u² + v²)`` through ``sqrt``) returns NaN at that point instead,
which poisons a fit the moment it converges.

* Same-family pairs: the gradient with respect to p's parameters (q held fixed)
  and with respect to q's (p held fixed), at ``p = q`` built from the shared
  example table, must be finite and 0.
* Cross-family pairs: at the table's example pair the gradient must be finite;
  where one family contains a member of the other (Exponential(l) = Gamma(1, l),
  a scalar Normal = a 1-d Gaussian vector, Uniform(0, 1) = Beta(1, 1)) it must
  also be 0 at that common member, for the parameters whose variation stays
  inside the larger family's interior.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vikl
from tests.families import EXAMPLES, example_pair, pair_id, registered_pairs

PAIRS = registered_pairs()

# Parameters that are counts, not continuous coordinates: KL is not differentiable in them.
_DISCRETE_FIELDS = {("Binomial", "total_count")}
# Parameters on the probability simplex: only directions that keep the sum (gradient minus
# its mean over the last axis) move within the family.
_SIMPLEX_FIELDS = {("Categorical", "_probs")}
# Families whose p = q lies on the edge of the finite-KL region: KL(U[l, h] ‖ U[l', h'])
# is +inf as soon as p's support leaves q's, so p = q is a one-sided (boundary) minimum
# and the one-sided gradient is not 0 (d/dl log((h' - l')/(h - l)) = 1/(h - l)). Only
# finiteness is asked there.
_BOUNDARY_MINIMUM = {"Uniform"}


def _split(dist):
    """``(names, values, treedef, keep)`` of the parameter leaves of ``dist``."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(dist)
    names = [jax.tree_util.keystr(path).strip(".") for path, _ in leaves]
    values = [leaf for _, leaf in leaves]
    keep = [i for i, n in enumerate(names) if (type(dist).__name__, n) not in _DISCRETE_FIELDS]
    return names, values, treedef, keep


def _kl_grads(p, q):
    """``({field: d KL / d field of p}, {... of q})`` (one jitted gradient for both)."""
    parts = [_split(p), _split(q)]

    def rebuild(part, chosen):
        _, values, treedef, keep = part
        full = list(values)
        for i, v in zip(keep, chosen):
            full[i] = v
        return jax.tree_util.tree_unflatten(treedef, full)

    def kl(chosen_p, chosen_q):
        return vikl.kl_divergence(rebuild(parts[0], chosen_p), rebuild(parts[1], chosen_q))

    args = [[part[1][i] for i in part[3]] for part in parts]
    grads = jax.jit(jax.grad(kl, argnums=(0, 1)))(*args)
    out = []
    for dist, (names, _, _, keep), side in zip((p, q), parts, grads):
        named = {}
        for i, g in zip(keep, side):
            g = np.asarray(g, np.float64)
            if (type(dist).__name__, names[i]) in _SIMPLEX_FIELDS:
                g = g - g.mean(axis=-1, keepdims=True)
            named[names[i]] = g
        out.append(named)
    return out


def _check_zero(grads, what, atol, zero=True):
    for name, g in grads.items():
        assert np.all(np.isfinite(g)), f"{what}: d KL / d {name} = {g} (not finite)"
        assert not zero or np.max(np.abs(g), initial=0.0) <= atol, f"{what}: d KL / d {name} = {g} (expected 0)"


def _same_family_cases():
    return [pq for pq in PAIRS if pq[0] is pq[1]]


def _atol(dtype):
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-12


@pytest.mark.parametrize("pair", _same_family_cases(), ids=[pair_id(pq) for pq in _same_family_cases()])
def test_gradient_of_kl_at_p_equal_q_is_zero(pair, dtype):
    name = pair[0].__name__
    if name not in EXAMPLES:
        pytest.skip("no example for this family")
    p = EXAMPLES[name][0]()
    q = EXAMPLES[name][0]()
    assert abs(float(vikl.kl_divergence(p, q))) <= _atol(dtype)
    zero = name not in _BOUNDARY_MINIMUM
    grads_p, grads_q = _kl_grads(p, q)
    _check_zero(grads_p, f"{name} p-side", _atol(dtype), zero)
    _check_zero(grads_q, f"{name} q-side", _atol(dtype), zero)


def _common_members():
    """``(id, make_p, make_q, sides)``: cross-family pairs at a distribution in both families."""
    def v(xs):
        return jnp.asarray(np.asarray(xs, np.float64), jnp.zeros(()).dtype)

    return [
        ("Exponential-Gamma", lambda: vikl.Exponential(1.3), lambda: vikl.Gamma(1.0, 1.3), ("p", "q")),
        ("Gamma-Exponential", lambda: vikl.Gamma(1.0, 1.3), lambda: vikl.Exponential(1.3), ("p", "q")),
        ("Uniform-Beta", lambda: vikl.Uniform(0.0, 1.0), lambda: vikl.Beta(1.0, 1.0), ("q",)),
        ("Normal-MultivariateNormalDiag", lambda: vikl.Normal(0.3, 1.2),
         lambda: vikl.MultivariateNormalDiag(v([0.3]), v([1.2])), ("p", "q")),
        ("MultivariateNormalDiag-Normal", lambda: vikl.MultivariateNormalDiag(v([0.3]), v([1.2])),
         lambda: vikl.Normal(0.3, 1.2), ("p", "q")),
        ("Normal-MultivariateNormal", lambda: vikl.Normal(0.3, 1.2),
         lambda: vikl.MultivariateNormal(v([0.3]), scale_tril=v([[1.2]])), ("p", "q")),
        ("MultivariateNormal-Normal", lambda: vikl.MultivariateNormal(v([0.3]), scale_tril=v([[1.2]])),
         lambda: vikl.Normal(0.3, 1.2), ("p", "q")),
        ("Normal-LowRankMultivariateNormal", lambda: vikl.Normal(0.3, 1.2),
         lambda: vikl.LowRankMultivariateNormal(v([0.3]), v([[0.6]]), v([1.08])), ("p",)),
        ("LowRankMultivariateNormal-Normal",
         lambda: vikl.LowRankMultivariateNormal(v([0.3]), v([[0.6]]), v([1.08])),
         lambda: vikl.Normal(0.3, 1.2), ("q",)),
    ]


_COMMON = _common_members()


@pytest.mark.parametrize("case", _COMMON, ids=[c[0] for c in _COMMON])
def test_gradient_of_cross_family_kl_at_a_common_member_is_zero(case, dtype):
    what, make_p, make_q, sides = case
    registered = {pair_id(pq) for pq in PAIRS}
    if what not in registered:
        pytest.skip(f"{what} is not registered")
    p, q = make_p(), make_q()
    assert abs(float(vikl.kl_divergence(p, q))) <= _atol(dtype) * 10, "the case is not p = q"
    grads_p, grads_q = _kl_grads(p, q)
    _check_zero(grads_p, f"{what} p-side", _atol(dtype) * 10, "p" in sides)
    _check_zero(grads_q, f"{what} q-side", _atol(dtype) * 10, "q" in sides)


@pytest.mark.slow  # 216 gradient compilations (~10 min on 2 busy cores)
@pytest.mark.parametrize("pair", PAIRS, ids=[pair_id(pq) for pq in PAIRS])
def test_gradient_of_kl_is_finite_at_the_example_pair(pair, dtype):
    made = example_pair(*pair)
    if made is None:
        pytest.skip("no example for this pair")
    p, q = made
    value = float(vikl.kl_divergence(p, q))
    if not np.isfinite(value):
        pytest.skip("KL is +inf for this pair: no gradient to check")
    for side, grads in zip("pq", _kl_grads(p, q)):
        for name, g in grads.items():
            assert np.all(np.isfinite(g)), f"{pair_id(pair)} {side}-side: d KL / d {name} = {g}"
