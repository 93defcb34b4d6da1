"""Chain, Invert and Block: composition order, log-dets over mixed event ranks, layouts.

References: NumPyro's ``ComposeTransform`` (float64), autodiff Jacobians (``jax.jacfwd`` +
``slogdet`` in float64) and the per-block results of the member bijectors.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions.transforms as T
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from vikl.bijectors import (
    Affine,
    Block,
    Chain,
    CorrCholesky,
    Exp,
    Identity,
    Invert,
    LowerCholesky,
    Ordered,
    SoftmaxCentered,
    StickBreaking,
)


def _tols(dtype):
    return (2e-5, 2e-5) if np.dtype(dtype) == np.float32 else (1e-11, 1e-12)


def _close(actual, expected, dtype, scale=1.0):
    rtol, atol = _tols(dtype)
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=rtol * scale, atol=atol * scale)


def _x(shape, seed=0, spread=1.5):
    return spread * np.random.default_rng(seed).standard_normal(shape)


# ---------------------------------------------------------------------- Chain
def _compose_cases():
    scale = np.array([0.5, 2.0, 3.0, 1.5])
    return [
        ("exp_after_stick", lambda dt: Chain([Exp(), StickBreaking()]),
         T.ComposeTransform([T.StickBreakingTransform(), T.ExpTransform()]), (2, 3)),
        ("affine_after_ordered", lambda dt: Chain([Affine(1.0, jnp.asarray(scale, dt)), Ordered()]),
         T.ComposeTransform([T.OrderedTransform(), T.AffineTransform(1.0, scale)]), (3, 4)),
        ("affine_after_corr", lambda dt: Chain([Affine(0.0, 2.0), CorrCholesky()]),
         T.ComposeTransform([T.CorrCholeskyTransform(), T.AffineTransform(0.0, 2.0)]), (2, 6)),
        ("three", lambda dt: Chain([Exp(), Ordered(), Affine(0.5, 0.25)]),
         T.ComposeTransform([T.AffineTransform(0.5, 0.25), T.OrderedTransform(), T.ExpTransform()]),
         (5,)),
    ]


@pytest.mark.parametrize("name,make,ref,shape", _compose_cases(), ids=[c[0] for c in _compose_cases()])
def test_chain_matches_numpyro_compose(name, make, ref, shape, dtype):
    x = _x(shape, seed=1)
    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
        y_ref = ref(jnp.asarray(x))
        ld_ref = np.asarray(ref.log_abs_det_jacobian(jnp.asarray(x), y_ref))
        y_ref = np.asarray(y_ref)
    chain = make(dtype)
    y, ld = chain.forward_and_log_det(jnp.asarray(x, dtype))
    assert y.dtype == dtype and ld.shape == shape[:-1]
    _close(y, y_ref, dtype)
    _close(ld, ld_ref, dtype, scale=4.0)
    back, ild = chain.inverse_and_log_det(y)
    _close(back, x, dtype, scale=20.0)
    _close(ild, -ld_ref, dtype, scale=20.0)
    assert chain.forward_event_shape(shape[1:] if len(shape) > 1 else shape) == y_ref.shape[
        1 if len(shape) > 1 else 0:]


def test_chain_order_is_function_composition(dtype):
    f, g = Exp(), Affine(1.0, 3.0)
    x = jnp.asarray(_x((4,), seed=2), dtype)
    _close(Chain([f, g]).forward(x), f.forward(g.forward(x)), dtype)
    _close(Chain([g, f]).forward(x), g.forward(f.forward(x)), dtype)


@pytest.mark.parametrize("bijectors,ndims", [
    ([], (0, 0)),
    ([Exp()], (0, 0)),
    ([Exp(), Affine(0.0, 2.0)], (0, 0)),
    ([Exp(), StickBreaking()], (1, 1)),
    ([StickBreaking(), Exp()], (1, 1)),
    ([CorrCholesky(), Exp()], (1, 2)),
    ([Exp(), CorrCholesky()], (1, 2)),
    ([Invert(CorrCholesky()), CorrCholesky()], (1, 1)),
    ([CorrCholesky(), Invert(CorrCholesky())], (2, 2)),
])
def test_chain_event_ndims(bijectors, ndims):
    chain = Chain(bijectors)
    assert (chain.event_ndims_in, chain.event_ndims_out) == ndims


def test_chain_log_det_is_autodiff_slogdet_float64():
    # Elementwise maps with per-coordinate parameters around vector maps of event_ndims 1:
    # their log-dets are summed over the chain's event axis.
    with jax.enable_x64(True):
        chain = Chain([Affine(jnp.asarray([0.0, 1.0, -1.0, 2.0]), jnp.asarray([0.5, 2.0, 1.0, 3.0])),
                       Ordered(), Exp(), Invert(Ordered()), Affine(0.3, 1.7)])
        assert chain.event_ndims_in == 1
        for seed in range(3):
            x = jnp.asarray(np.sort(_x((4,), seed=seed + 3)))
            jac = jax.jacfwd(chain.forward)(x)
            np.testing.assert_allclose(float(chain.forward_log_det_jacobian(x)),
                                       np.linalg.slogdet(np.asarray(jac))[1], rtol=1e-11)
            y = chain.forward(x)
            jac_inv = jax.jacfwd(chain.inverse)(y)
            np.testing.assert_allclose(float(chain.inverse_log_det_jacobian(y)),
                                       np.linalg.slogdet(np.asarray(jac_inv))[1], rtol=1e-10)


def test_empty_chain_is_identity(dtype):
    x = jnp.asarray(_x((2, 3)), dtype)
    y, ld = Chain([]).forward_and_log_det(x)
    _close(y, x, dtype)
    assert ld.shape == (2, 3) and not np.any(np.asarray(ld))


def test_chain_and_invert_bad_arguments():
    with pytest.raises(TypeError, match=r"Chain: bijectors\[1\] must be a vikl.bijectors.Bijector"):
        Chain([Exp(), jnp.exp])
    with pytest.raises(TypeError, match="Chain: bijectors must be a list or tuple"):
        Chain(Exp())
    with pytest.raises(TypeError, match="Invert: bijector must be"):
        Invert(jnp.exp)
    with pytest.raises(ValueError, match="n\\(n-1\\)/2 entries for some n; got 4"):
        Chain([Exp(), CorrCholesky()]).forward(jnp.zeros(4))
    with pytest.raises(ValueError, match="Chain: x must have at least 1 axis"):
        Chain([Exp(), StickBreaking()]).forward(jnp.zeros(()))


# ---------------------------------------------------------------------- Invert
@pytest.mark.parametrize("make,m", [(StickBreaking, 3), (CorrCholesky, 3), (Ordered, 4),
                                    (lambda: Affine(0.5, 2.0), 3), (LowerCholesky, 6)])
def test_invert_swaps_directions(make, m, dtype):
    bij = make()
    x = jnp.asarray(_x((2, m), seed=4), dtype)
    y, ld = bij.forward_and_log_det(x)
    inv = Invert(bij)
    back, ld_inv = inv.forward_and_log_det(y)
    _close(back, x, dtype, scale=10.0)
    _close(ld_inv, -ld, dtype, scale=10.0)
    y2, ild_inv = inv.inverse_and_log_det(back)
    _close(y2, y, dtype, scale=10.0)
    _close(ild_inv, ld, dtype, scale=10.0)
    assert (inv.event_ndims_in, inv.event_ndims_out) == (bij.event_ndims_out, bij.event_ndims_in)
    event_out = bij.forward_event_shape((m,))
    assert inv.forward_event_shape(event_out) == (m,)
    assert inv.inverse_event_shape((m,)) == event_out
    _close(Invert(inv).forward(x), y, dtype)


@settings(max_examples=25, deadline=None)
@given(hst.lists(hst.floats(-5.0, 5.0), min_size=3, max_size=3),
       hst.sampled_from(["stick", "softmax", "corr", "ordered"]))
def test_chain_with_its_inverse_is_identity_property(xs, which):
    with jax.enable_x64(True):
        f = {"stick": StickBreaking(), "softmax": SoftmaxCentered(), "corr": CorrCholesky(),
             "ordered": Ordered()}[which]
        x = jnp.asarray(xs, jnp.float64)
        outer = Chain([Exp(), f, Affine(0.5, 0.5)])
        y, ld = Chain([Invert(outer), outer]).forward_and_log_det(x)
        np.testing.assert_allclose(np.asarray(y), xs, rtol=1e-9, atol=1e-9)
        assert abs(float(ld)) < 1e-8
        # Associativity.
        g = Affine(-1.0, 0.5)
        left = Chain([Chain([g, f]), Exp()]).forward_and_log_det(x)
        right = Chain([g, Chain([f, Exp()])]).forward_and_log_det(x)
        for a, b in zip(left, right):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------- Block
def _mixed_block():
    return Block([Identity(), Exp(), StickBreaking(), CorrCholesky()],
                 out_shapes=[(), (2,), (4,), (3, 3)])


def test_block_layout():
    b = _mixed_block()
    assert b.in_shapes == ((), (2,), (3,), (3,))
    assert b.out_shapes == ((), (2,), (4,), (3, 3))
    assert b.in_sizes == (1, 2, 3, 3) and b.out_sizes == (1, 2, 4, 9)
    assert b.in_offsets == (0, 1, 3, 6, 9) and b.out_offsets == (0, 1, 3, 7, 16)
    assert (b.in_size, b.out_size) == (9, 16)
    assert b.forward_event_shape((9,)) == (16,) and b.inverse_event_shape((5, 16)) == (5, 9)
    same = Block([Identity(), Exp(), StickBreaking(), CorrCholesky()], [(), 2, 3, 3])
    assert same.out_shapes == b.out_shapes and same.in_shapes == b.in_shapes


def test_block_matches_per_block_results(dtype):
    b = _mixed_block()
    x = jnp.asarray(_x((5, 9), seed=5), dtype)
    y, ld = b.forward_and_log_det(x)
    assert y.shape == (5, 16) and ld.shape == (5,)
    parts = b.split_outputs(y)
    expected_ld = np.zeros(5)
    pieces = [(Identity(), x[:, 0]), (Exp(), x[:, 1:3]), (StickBreaking(), x[:, 3:6]),
              (CorrCholesky(), x[:, 6:9])]
    for (bij, xi), got in zip(pieces, parts):
        yi, ldi = bij.forward_and_log_det(xi)
        _close(got, yi, dtype)
        assert got.shape == yi.shape
        ldi = np.asarray(ldi, np.float64)
        expected_ld += ldi.sum(-1) if isinstance(bij, Exp) else ldi
    _close(ld, expected_ld, dtype, scale=4.0)
    _close(b.join_outputs(parts), y, dtype)
    back, ild = b.inverse_and_log_det(y)
    _close(back, x, dtype, scale=10.0)
    _close(ild, -expected_ld, dtype, scale=10.0)
    for got, xi in zip(b.split_inputs(back), [p[1] for p in pieces]):
        _close(got, xi, dtype, scale=10.0)


def test_block_of_inverses_is_inverse_of_block(dtype):
    b = _mixed_block()
    inv = Block([Invert(Identity()), Invert(Exp()), Invert(StickBreaking()), Invert(CorrCholesky())],
                sizes=list(b.out_shapes))
    assert inv.out_shapes == b.in_shapes
    y = b.forward(jnp.asarray(_x((3, 9), seed=9), dtype))
    expected = b.inverse_and_log_det(y)
    got = inv.forward_and_log_det(y)
    for a, e in zip(got, expected):
        _close(a, e, dtype)
    # In a chain, an elementwise map after the block is summed over the 16 flat outputs.
    x = jnp.asarray(_x((3, 9), seed=10), dtype)
    scaled = Chain([Affine(0.0, 2.0), b])
    _, ld = scaled.forward_and_log_det(x)
    _close(ld, np.asarray(b.forward_log_det_jacobian(x), np.float64) + 16 * np.log(2.0), dtype,
           scale=4.0)
    back, ld = Chain([inv, Invert(Affine(0.0, 2.0)), scaled]).forward_and_log_det(x)
    _close(back, x, dtype, scale=10.0)
    _close(ld, np.zeros(3), dtype, scale=10.0)


def test_block_under_jit_vmap_and_grad(dtype):
    b = Block([Affine(jnp.asarray(0.5, dtype), jnp.asarray(2.0, dtype)), StickBreaking(),
               CorrCholesky()], [2, 3, 3])
    x = jnp.asarray(_x((4, 8), seed=6), dtype)
    y, ld = b.forward_and_log_det(x)
    yj, ldj = jax.jit(jax.vmap(b.forward_and_log_det))(x)
    _close(yj, y, dtype)
    _close(ldj, ld, dtype)

    def loss(bij, v):
        out, log_det = bij.forward_and_log_det(v)
        return jnp.sum(out**2) + jnp.sum(log_det)

    g_bij, g_x = jax.jit(jax.grad(loss, argnums=(0, 1)))(b, x)
    assert np.all(np.isfinite(np.asarray(g_x))) and np.any(np.asarray(g_x) != 0)
    affine = g_bij.bijectors[0]
    # d/dscale of sum((0.5 + s x)^2) + 2 * 4 * log s at s = 2 (two affine coordinates, 4 rows).
    xa = np.asarray(x[:, :2], np.float64)
    expected = np.sum(2 * (0.5 + 2 * xa) * xa) + 8 / 2.0
    _close(affine.scale, expected, dtype, scale=10.0)


def test_block_log_det_is_autodiff_slogdet_float64():
    with jax.enable_x64(True):
        b = Block([Exp(), Ordered(), Affine(1.0, jnp.asarray([2.0, 0.5])), Identity()],
                  [2, 3, 2, 1])
        x = jnp.asarray(_x((8,), seed=7))
        jac = jax.jacfwd(b.forward)(x)
        np.testing.assert_allclose(float(b.forward_log_det_jacobian(x)),
                                   np.linalg.slogdet(np.asarray(jac))[1], rtol=1e-12)


def test_block_shape_errors():
    with pytest.raises(ValueError, match="exactly one of sizes"):
        Block([Exp()])
    with pytest.raises(ValueError, match="exactly one of sizes"):
        Block([Exp()], [1], out_shapes=[(1,)])
    with pytest.raises(ValueError, match="one entry per bijector \\(2\\)"):
        Block([Exp(), Exp()], [1])
    with pytest.raises(ValueError, match=r"out_shapes\[0\] = \(3, 4\) does not fit bijectors\[0\]"):
        Block([CorrCholesky()], out_shapes=[(3, 4)])
    with pytest.raises(ValueError, match=r"sizes\[0\] = 4 does not fit .*got 4"):
        Block([CorrCholesky()], [4])
    with pytest.raises(ValueError, match=r"sizes\[1\] must be a non-negative int"):
        Block([Exp(), Exp()], [1, -2])
    with pytest.raises(ValueError, match=r"out_shapes\[0\] = \(\) does not fit .*at least 1 axis"):
        Block([StickBreaking()], out_shapes=[()])
    with pytest.raises(ValueError, match=r"bijectors\[0\] \(Ordered\) needs 1 input event axes"):
        Block([Ordered()], out_shapes=[()])
    with pytest.raises(TypeError, match="Block: bijectors"):
        Block(Exp(), [1])
    b = _mixed_block()
    with pytest.raises(ValueError, match=r"event shape of x must be \(9,\)"):
        b.forward(jnp.zeros((2, 8)))
    with pytest.raises(ValueError, match=r"event shape of y must be \(16,\)"):
        b.inverse(jnp.zeros(15))
    with pytest.raises(ValueError, match=r"parts\[3\] must end in the block's event shape \(3, 3\)"):
        b.join_outputs([jnp.zeros(()), jnp.zeros(2), jnp.zeros(4), jnp.zeros(9)])


def test_learnable_bijectors_inside_combinators_get_gradients(dtype):
    chain = Chain([Affine(jnp.asarray(0.0, dtype), jnp.asarray(1.5, dtype)), Exp()])
    x = jnp.asarray(_x((6,), seed=8), dtype)

    def loss(c):
        return jnp.sum(c.forward(x))

    g = jax.grad(loss)(chain)
    # d/dscale sum(shift + scale e^x) = sum e^x; d/dshift = 6.
    _close(g.bijectors[0].scale, np.exp(np.asarray(x, np.float64)).sum(), dtype, scale=10.0)
    _close(g.bijectors[0].shift, 6.0, dtype)


def test_unconstrain_maps_parameters_of_bijectors_in_a_tuple():
    from vikl._params import constrain, unconstrain

    chain = Chain([Affine(1.0, 2.0), Exp()])
    params = unconstrain(chain)
    np.testing.assert_allclose(np.asarray(params["bijectors"][0]["scale"]), np.log(2.0), rtol=1e-6)
    back = constrain(chain, params)
    np.testing.assert_allclose(np.asarray(back.bijectors[0].scale), 2.0, rtol=1e-6)


def test_block_with_batched_sites(dtype):
    # A (2, 3, 3) site of correlation factors and a (2, 4) site of simplices: each member's
    # log-det is summed over the site's extra (batch) axis.
    b = Block([CorrCholesky(), StickBreaking(), Exp()], out_shapes=[(2, 3, 3), (2, 4), (2, 2)])
    assert b.in_shapes == ((2, 3), (2, 3), (2, 2)) and (b.in_size, b.out_size) == (16, 30)
    x = jnp.asarray(_x((5, 16), seed=11), dtype)
    y, ld = b.forward_and_log_det(x)
    xc, xs, xe = (np.asarray(v, np.float64) for v in (x[:, :6], x[:, 6:12], x[:, 12:]))
    expected = (np.asarray(CorrCholesky().forward_log_det_jacobian(jnp.asarray(xc.reshape(5, 2, 3),
                                                                                dtype))).sum(-1)
                + np.asarray(StickBreaking().forward_log_det_jacobian(
                    jnp.asarray(xs.reshape(5, 2, 3), dtype))).sum(-1)
                + xe.sum(-1))
    _close(ld, expected, dtype, scale=4.0)
    shapes = [v.shape for v in b.split_outputs(y)]
    assert shapes == [(5, 2, 3, 3), (5, 2, 4), (5, 2, 2)]
