"""The KL registry: dispatch rules, error messages, and a walk over every pair.

The walk checks each registered closed form against a Monte-Carlo estimate
(from the families' own sample/log_prob, which are tested against SciPy
elsewhere; vikl.estimate_kl itself is tested in test_estimators.py) within 5
standard errors, so a newly registered pair is covered
without writing a test for it.
"""

import ast
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vikl
from tests.families import example_pair, pair_id, registered_pairs

PAIRS = registered_pairs()

# Pairs whose KL is +inf because q's tails are too light for p's, with the same
# support: sampling never shows it (every draw is finite), so these are checked
# by quadrature instead: the truncated integral keeps growing with the range.
TAIL_INFINITE = {
    ("Cauchy", "Normal"),
    ("Cauchy", "Laplace"),
    ("Cauchy", "Gumbel"),
    ("Laplace", "Gumbel"),
    ("StudentT", "Gumbel"),
    ("StudentT", "Laplace"),
    ("Cauchy", "StudentT"),
}


_MC_SAMPLES = 200_000


@jax.jit
def _draw(p, key):
    """``_MC_SAMPLES`` draws of p and their log-densities.

    Jitted once per family (and parameter shapes), not once per pair: most of
    this walk's time would otherwise go to compiling each family's sampler again
    for every q it is paired with.
    """
    x = p.sample(key, (_MC_SAMPLES,))
    return x, p.log_prob(x)


@jax.jit
def _log_prob(q, x):
    return q.log_prob(x)


def _monte_carlo_kl(p, q):
    """``(mean, standard error)`` of ``log p(X) - log q(X)``, ``X ~ p``, in float64."""
    x, lp = _draw(p, jax.random.PRNGKey(7))
    # A scalar Normal against a 1-d vector Gaussian: the same numbers as a (1,) event.
    if p.event_shape == () and q.event_shape == (1,):
        x = x[..., None]
    elif p.event_shape == (1,) and q.event_shape == ():
        x = x[..., 0]
    lq = _log_prob(q, x)
    t = np.asarray(lp, np.float64) - np.asarray(lq, np.float64)
    with np.errstate(invalid="ignore"):
        return t.mean(), t.std(ddof=1) / np.sqrt(t.size)


def _truncated_kl(p, q, radius):
    """∫ p (log p − log q) over [-R, R] (or [0, R]), float64 trapezoid on a log-spaced grid."""
    with jax.enable_x64(True):
        leaves, treedef = jax.tree_util.tree_flatten((p, q))
        p64, q64 = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(leaf, jnp.float64) for leaf in leaves])
        pos = np.concatenate([[0.0], np.logspace(-6, np.log10(radius), 200_001)])
        grid = np.concatenate([-pos[:0:-1], pos]) if float(p64.log_prob(jnp.asarray(-1.0))) > -np.inf else pos
        x = jnp.asarray(grid)
        lp, lq = np.asarray(p64.log_prob(x)), np.asarray(q64.log_prob(x))
        with np.errstate(invalid="ignore", over="ignore"):
            f = np.exp(lp) * (lp - lq)
        f = np.where(np.isfinite(f), f, 0.0)  # exp(lp) underflowed to 0 where lq overflowed
        return np.trapezoid(f, grid)


@pytest.mark.parametrize("pair", PAIRS, ids=[pair_id(pq) for pq in PAIRS])
def test_every_registered_pair_matches_monte_carlo(pair):
    made = example_pair(*pair)
    if made is None:
        pytest.fail(f"tests/families.py has no example for {pair_id(pair)}; add one")
    p, q = made
    closed = float(vikl.kl_divergence(p, q))
    names = (pair[0].__name__, pair[1].__name__)
    if names in TAIL_INFINITE:
        assert closed == np.inf
        a, b, c = (_truncated_kl(p, q, r) for r in (1e1, 1e2, 6e2))
        assert a < b < c and c - b > 0.5, f"truncated KL does not grow: {a}, {b}, {c}"
        return
    value, stderr = _monte_carlo_kl(p, q)
    if np.isinf(closed):
        assert closed > 0, "KL is never -inf"
        assert np.isinf(value) and value > 0, f"closed form +inf but Monte Carlo gave {value}"
        return
    assert np.isfinite(closed) and closed >= -1e-6
    assert abs(closed - value) <= 5 * stderr + 1e-5 * max(1.0, abs(closed)), (
        f"{pair_id(pair)}: closed form {closed} vs Monte Carlo {value} ± {stderr}"
    )


def _summed_kl(p, q):
    return jnp.sum(vikl.kl_divergence(p, q))


@jax.jit
def _kl_and_grads(p, q):
    """The jitted KL and its gradients in one program (one compile per pair, not two,
    and no op-by-op dispatch of the backward pass)."""
    return vikl.kl_divergence(p, q), jax.grad(_summed_kl, argnums=(0, 1))(p, q)


@pytest.mark.parametrize("pair", PAIRS, ids=[pair_id(pq) for pq in PAIRS])
def test_every_pair_jits_and_has_finite_gradients(pair):
    made = example_pair(*pair)
    if made is None:
        pytest.skip("no example")
    p, q = made
    eager = vikl.kl_divergence(p, q)
    jitted, (gp, gq) = _kl_and_grads(p, q)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-5)
    if not np.isfinite(np.asarray(eager)).all():
        return
    for leaf in jax.tree_util.tree_leaves((gp, gq)):
        assert np.isfinite(np.asarray(leaf)).all(), f"non-finite gradient for {pair_id(pair)}"


def test_registry_covers_every_pair_torch_has_for_shared_families():
    torch_kl = pytest.importorskip("torch.distributions.kl")
    ours = {(a.__name__, b.__name__) for a, b in vikl.registered_kl_pairs()}
    shared = set(vikl.__all__)
    missing = []
    for tp, tq in torch_kl._KL_REGISTRY:
        names = (tp.__name__, tq.__name__)
        if names[0] in shared and names[1] in shared and names not in ours:
            missing.append(names)
    assert not missing, f"torch.distributions registers pairs vikl lacks: {sorted(missing)}"


def test_subclass_dispatches_to_parent_pair_and_specific_pair_wins():
    class MyNormal(vikl.Normal):
        pass

    p, q = MyNormal(0.0, 1.0), vikl.Normal(1.0, 2.0)
    expected = float(vikl.kl_divergence(vikl.Normal(0.0, 1.0), q))
    assert float(vikl.kl_divergence(p, q)) == pytest.approx(expected)

    @vikl.register_kl(MyNormal, vikl.Normal)
    def _special(p_, q_):
        return jnp.full(jnp.broadcast_shapes(p_.batch_shape, q_.batch_shape), 42.0)

    try:
        assert float(vikl.kl_divergence(p, q)) == 42.0
        # (Normal, MyNormal) is not implied by (MyNormal, Normal): KL is asymmetric.
        assert float(vikl.kl_divergence(q, MyNormal(0.0, 1.0))) != 42.0
    finally:
        from vikl._kl import _KL_REGISTRY, _dispatch

        del _KL_REGISTRY[(MyNormal, vikl.Normal)]
        _dispatch.cache_clear()


def test_ambiguous_pairs_raise():
    class A(vikl.Normal):
        pass

    class B(vikl.Normal):
        pass

    from vikl._kl import _KL_REGISTRY, _dispatch

    vikl.register_kl(A, vikl.Normal)(lambda p, q: 0.0)
    vikl.register_kl(vikl.Normal, B)(lambda p, q: 1.0)
    try:
        with pytest.raises(NotImplementedError, match="ambiguous"):
            vikl.kl_divergence(A(0.0, 1.0), B(0.0, 1.0))
    finally:
        del _KL_REGISTRY[(A, vikl.Normal)]
        del _KL_REGISTRY[(vikl.Normal, B)]
        _dispatch.cache_clear()


def test_missing_pair_names_both_types_and_points_to_estimate_kl():
    class Lonely(vikl.Distribution):
        loc: jax.Array = vikl.param(vikl.constraints.real)

    with pytest.raises(NotImplementedError) as err:
        vikl.kl_divergence(Lonely(0.0), vikl.Normal(0.0, 1.0))
    msg = str(err.value)
    assert "Lonely" in msg and "Normal" in msg and "estimate_kl" in msg


def test_register_kl_rejects_non_distribution_types():
    with pytest.raises(TypeError, match="type_p"):
        vikl.register_kl(int, vikl.Normal)


def test_mixed_arguments_are_rejected():
    with pytest.raises(TypeError, match="both"):
        vikl.kl_divergence(vikl.Normal(0.0, 1.0), jnp.array([0.5, 0.5]))


def test_batch_shapes_broadcast_between_p_and_q():
    p = vikl.Normal(jnp.zeros((3, 1)), 1.0)
    q = vikl.Normal(jnp.zeros((4,)), jnp.linspace(0.5, 2.0, 4))
    kl = vikl.kl_divergence(p, q)
    assert kl.shape == (3, 4)


def test_register_kl_with_tuples_registers_every_pair():
    class A(vikl.Normal):
        pass

    class B(vikl.Normal):
        pass

    from vikl._kl import _KL_REGISTRY, _dispatch

    @vikl.register_kl((A, B), (vikl.Laplace, vikl.Cauchy))
    @vikl.register_kl(A, A)
    def _both(p, q):
        return jnp.full(jnp.broadcast_shapes(p.batch_shape, q.batch_shape), 7.0)

    added = [(A, vikl.Laplace), (A, vikl.Cauchy), (B, vikl.Laplace), (B, vikl.Cauchy), (A, A)]
    try:
        for tp, tq in added:
            assert vikl.registered_kl_pairs()[(tp, tq)] is _both
        assert float(vikl.kl_divergence(B(0.0, 1.0), vikl.Cauchy(0.0, 1.0))) == 7.0
        # (B, A) was not registered: the parent pair (Normal, Normal) answers.
        assert float(vikl.kl_divergence(B(0.0, 1.0), A(0.0, 1.0))) == 0.0
    finally:
        for pair in added:
            del _KL_REGISTRY[pair]
        _dispatch.cache_clear()


@pytest.mark.parametrize(
    "args, match",
    [
        (((), vikl.Normal), r"type_p .*non-empty tuple.*got \(\)"),
        ((vikl.Normal, (vikl.Laplace, float)), r"type_q .*got \(<class 'vikl.*Laplace'>, <class 'float'>\)"),
    ],
)
def test_register_kl_rejects_bad_tuples(args, match):
    with pytest.raises(TypeError, match=match):
        vikl.register_kl(*args)


def _register_kl_uses(tree):
    """``(register_kl calls used as decorators of module-level defs, all register_kl calls)``."""
    decorators = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            decorators.update(id(d) for d in node.decorator_list)
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == "register_kl"
    ]
    return decorators, calls


def test_the_package_registers_every_closed_form_one_way():
    # The rule: `@register_kl(P, Q)` (P, Q a type or a tuple of types) decorating a
    # module-level function; no `register_kl(P, Q)(fn)` calls, in loops or elsewhere.
    package = pathlib.Path(vikl.__file__).parent
    offenders, decorated = [], 0
    for path in sorted(package.rglob("*.py")):
        decorators, calls = _register_kl_uses(ast.parse(path.read_text()))
        for call in calls:
            if id(call) in decorators:
                decorated += 1
            else:
                offenders.append(f"{path.relative_to(package)}:{call.lineno}")
    assert offenders == []
    assert decorated >= 50
    # Every registered function is a module-level function of the package, found by its name.
    for (tp, tq), fn in vikl.registered_kl_pairs().items():
        module = sys.modules[fn.__module__]
        assert getattr(module, fn.__name__) is fn, (tp.__name__, tq.__name__, fn.__qualname__)
