"""A big batch gives the same numbers as the same batch in small pieces.

Every closed-form KL (and every entropy) is evaluated once on a batch of ~40,000
distributions with varied parameters, and again on the same parameters in chunks of
1,000, and the two must agree element by element. The formulas are elementwise over
the batch, so any difference is a compiler fault, not a rounding question.

This is not hypothetical: jaxlib 0.10.2 on CPU miscompiles a reduction of a product
with a broadcast operand once the output has more than 32,768 elements
(jax-ml/jax#39103, fixed by excluding that release in pyproject.toml). Under it, the
Beta KL of a 14,641-element batch was off by 6% while every small batch was right.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vikl
from tests.families import EXAMPLES, example_pair, pair_id, registered_pairs

PAIRS = registered_pairs()
TOTAL = 40_000  # outputs in the big batch: above the 32,768 where jaxlib 0.10.2 goes wrong
CHUNK = 1_000


def _spread(dist, n, salt):
    """``dist`` repeated along a new leading batch axis of size ``n``, each copy's
    floating parameters scaled by its own factor in [1, 1.05) (signs and supports
    are kept, so the KLs stay finite)."""
    leaves, treedef = jax.tree_util.tree_flatten(dist)
    out = []
    for i, leaf in enumerate(leaves):
        leaf = jnp.asarray(leaf)
        tiled = jnp.broadcast_to(leaf, (n,) + leaf.shape)
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            u = np.modf(np.arange(n) * 0.6180339887 + 0.37 * (i + 1) + salt)[0]
            f = jnp.asarray(1.0 + 0.05 * u, leaf.dtype).reshape((n,) + (1,) * leaf.ndim)
            tiled = tiled * f
        out.append(tiled)
    return jax.tree_util.tree_unflatten(treedef, out)


def _chunk(dist, start, stop):
    return jax.tree_util.tree_map(lambda a: a[start:stop], dist)


def _assert_batch_invariant(fn, *dists):
    per_copy = max(1, math.prod(jnp.shape(fn(*dists))))
    n = -(-TOTAL // per_copy // CHUNK) * CHUNK
    big = [_spread(d, n, 0.11 * k) for k, d in enumerate(dists)]
    f = jax.jit(fn)
    whole = np.asarray(f(*big))
    pieces = np.concatenate([np.asarray(f(*(_chunk(d, s, s + CHUNK) for d in big))) for s in range(0, n, CHUNK)])
    np.testing.assert_allclose(whole, pieces, rtol=1e-6, atol=0)


@pytest.mark.parametrize("pair", PAIRS, ids=[pair_id(pq) for pq in PAIRS])
def test_kl_of_a_big_batch_equals_the_kl_of_its_pieces(pair):
    made = example_pair(*pair)
    if made is None:
        pytest.skip("no example for this pair")
    _assert_batch_invariant(vikl.kl_divergence, *made)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_entropy_of_a_big_batch_equals_the_entropy_of_its_pieces(name):
    p = EXAMPLES[name][0]()
    try:
        p.entropy()
    except NotImplementedError:
        pytest.skip(f"{name} has no closed-form entropy")
    _assert_batch_invariant(lambda d: d.entropy(), p)


def test_beta_kl_regression_from_jaxlib_0_10_2():
    # The case that exposed the miscompile: one pair, tiled 14,641 times, must give the
    # value of the pair on its own. Reference 0.0364872619998 from 40-digit mpmath
    # (lbeta and digamma terms) and torch.distributions in float64.
    one = float(vikl.kl_divergence(vikl.Beta(0.05, 30.0), vikl.Beta(0.05, 7.0)))
    p = vikl.Beta(jnp.full((14641,), 0.05), jnp.full((14641,), 30.0))
    q = vikl.Beta(jnp.full((14641,), 0.05), jnp.full((14641,), 7.0))
    kl = np.asarray(vikl.kl_divergence(p, q))
    np.testing.assert_allclose(kl, one, rtol=1e-6)
    np.testing.assert_allclose(one, 0.0364872619998, rtol=1e-11 if kl.dtype == np.float64 else 2e-4)


def test_the_known_bad_jaxlib_is_named_and_the_flag_silences_it():
    from vikl._jax_check import check_jaxlib

    message = check_jaxlib("0.10.2", "")
    assert "39103" in message and "--xla_cpu_experimental_ynn_fusion_type=" in message
    assert check_jaxlib("0.10.2", "--xla_cpu_experimental_ynn_fusion_type= --other") is None
    assert check_jaxlib("0.10.1", "") is None
