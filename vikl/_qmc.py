"""Randomized quasi-Monte Carlo (RQMC) base draws: scrambled Sobol points mapped to normals.

A reparameterized family draws ``x = T_q(eps)`` from standard normal noise
``eps``. Plain Monte Carlo takes ``eps`` i.i.d.; RQMC takes the rows of a
randomly scrambled Sobol point set in ``[0, 1)^D`` mapped through the normal
quantile function, ``eps = Phi^-1(u)``. Each row is exactly ``N(0, I_D)``
(up to the 32-bit grid of ``u``), so every average over the rows is an
unbiased estimate of its expectation, and the rows cover the space far more
evenly than i.i.d. draws: for smooth integrands the error falls like
``n^-1 (log n)^D`` rather than ``n^-1/2`` (Buchholz, Wenzel, Mandt 2018).

The points (:func:`sobol_bits`):

* Sobol's sequence in Gray-code order with the Joe-Kuo direction numbers
  ("new-joe-kuo-6.21201", the ones :class:`scipy.stats.qmc.Sobol` uses) for
  the first :data:`MAX_SOBOL_DIM` = 1024 coordinates, embedded below. Beyond
  them the remaining coordinates are plain i.i.d. draws (Owen's "padding" with
  Monte Carlo: still unbiased; the QMC gain comes from the first coordinates).
* Randomized by a random linear matrix scramble (a lower-triangular binary
  32 x 32 matrix with unit diagonal per coordinate) and a random digital shift
  (Matousek 1998; scipy's ``scramble=True``), both drawn from ``key``: pure,
  ``jit``/``vmap``-able, a new scramble per key.
* Points ``start .. start + n - 1`` of the sequence; with ``n`` a power of two
  (and ``start`` a multiple of it) they form a scrambled (t, m, s)-net, where
  the error is smallest. Chunks of one long sequence share ``key`` and
  advance ``start``. At most ``2**32`` points.

The normals (:func:`uniform_to_normal`): the 32-bit integer ``y`` gives
``u = (y + 1/2) 2^-32``; ``Phi^-1`` is taken of ``min(u, 1 - u)`` with the
complement formed exactly in integers, so no ``u`` rounds to 0 or 1 in float32
and the tails reach about ``+-6.2``.

References:
  A. Buchholz, F. Wenzel, S. Mandt (2018). Quasi-Monte Carlo variational
  inference. ICML.
  S. Joe, F. Y. Kuo (2008). Constructing Sobol sequences with better
  two-dimensional projections. SIAM J. Sci. Comput. 30, 2635-2654.
  J. Matousek (1998). On the L2-discrepancy for anchored boxes. J. Complexity 14.
  A. B. Owen (1998). Latin supercube sampling for very high-dimensional simulations.
  ACM TOMACS 8.
"""

from __future__ import annotations

import base64
import functools
import math
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from vikl._math import with_score

__all__ = ["DRAWS", "MAX_SOBOL_DIM", "sobol_bits", "uniform_to_normal", "normal_draws",
           "base_size", "sample_from_base", "draw", "check_draws", "resolve"]

#: The values of the ``draws`` option: ``"mc"`` (i.i.d. normals), ``"rqmc"`` (scrambled Sobol;
#: an error for families without a map from normals) and ``"auto"`` (``"rqmc"`` where the
#: family has that map, else ``"mc"``).
DRAWS = ("mc", "rqmc", "auto")
#: Coordinates with Sobol points; further coordinates are plain Monte Carlo.
MAX_SOBOL_DIM = 1024
_BITS = 32
# Number of primitive polynomials over GF(2) of degree 1, 2, ...: phi(2^s - 1) / s. Joe and
# Kuo's coordinate j >= 1 uses the j-th of them in order of degree, then value.
_PRIMITIVE_COUNTS = (1, 1, 2, 2, 6, 6, 18, 16, 48, 60, 176, 144, 630)


def check_draws(draws, where):
    """``draws`` if it is one of :data:`DRAWS`, else a ``ValueError`` naming ``where``."""
    if draws not in DRAWS:
        raise ValueError(f"{where}: draws must be one of {DRAWS}; got {draws!r}")
    return draws


def resolve(draws, q):
    """``"auto"`` -> ``"rqmc"`` when ``q`` draws from given normals, else ``"mc"``; others unchanged."""
    if draws == "auto":
        return "rqmc" if base_size(q) is not None else "mc"
    return draws


# ----------------------------------------------------------------------------- Sobol points
@functools.cache
def _direction_numbers() -> np.ndarray:
    """Joe-Kuo direction numbers ``v[j, k] = m_jk 2^(32-k)`` (k = 1..32), shape (1024, 32) uint32.

    Decoded from :data:`_JOE_KUO`: for each coordinate ``j >= 1`` the ``s - 1`` inner
    coefficients of its primitive polynomial, then the odd initial numbers
    ``m_1..m_s`` (``m_k < 2^k``, stored without their low bit). Coordinate 0 is
    van der Corput's (all ``m_k = 1``). ``m_k`` for ``k > s`` follow Bratley and
    Fox's recurrence ``m_k = m_(k-s) ^ (m_(k-s) << s) ^ XOR_i (a_i m_(k-i) << i)``.
    """
    raw = np.unpackbits(np.frombuffer(zlib.decompress(base64.b64decode(_JOE_KUO)), np.uint8))
    pos = 0

    def take(nbits):
        nonlocal pos
        value = 0
        for b in raw[pos:pos + nbits]:
            value = (value << 1) | int(b)
        pos += nbits
        return value

    degrees = [s for s, count in enumerate(_PRIMITIVE_COUNTS, 1) for _ in range(count)]
    v = np.zeros((MAX_SOBOL_DIM, _BITS), np.uint64)
    v[0] = [1 << (_BITS - k) for k in range(1, _BITS + 1)]
    for j in range(1, MAX_SOBOL_DIM):
        s = degrees[j - 1]
        inner = take(s - 1)  # a_1 .. a_(s-1), a_1 first
        m = [(take(k - 1) << 1) | 1 for k in range(1, s + 1)]
        for k in range(s, _BITS):
            new = m[k - s] ^ (m[k - s] << s)
            for i in range(1, s):
                if (inner >> (s - 1 - i)) & 1:
                    new ^= m[k - i] << i
            m.append(new)
        v[j] = [m[k - 1] << (_BITS - k) for k in range(1, _BITS + 1)]
    return v.astype(np.uint32)


def _matrix_scramble(key, v):
    """Left-multiplies each coordinate's direction numbers by a random unit lower-triangular
    binary matrix: output bit ``r`` (from the top) is the parity of ``row_r & v``."""
    d = v.shape[0]
    r = np.arange(_BITS, dtype=np.uint32)
    keep = ~((np.uint32(1) << (np.uint32(_BITS - 1) - r)) - np.uint32(1))  # the top r + 1 bits
    diag = np.uint32(1) << (np.uint32(_BITS - 1) - r)
    rows = (jax.random.bits(key, (d, _BITS), jnp.uint32) & keep) | diag  # (d, rows)
    parity = jax.lax.population_count(rows[:, :, None] & v[:, None, :]) & jnp.uint32(1)  # (d, r, k)
    return jnp.bitwise_or.reduce(parity << (jnp.uint32(_BITS - 1) - jnp.asarray(r))[None, :, None], axis=1)


def sobol_bits(key, n, d, *, start=0, total=None, scramble=True):
    """Points ``start .. start + n - 1`` of a (scrambled) Sobol sequence, as 32-bit integers.

    Args:
      key: PRNG key of the scramble (unused when ``scramble=False``).
      n: number of points (static).
      d: coordinates, ``1 <= d <= MAX_SOBOL_DIM`` (static).
      start: index of the first point (an int or a traced integer scalar).
      total: a static bound on ``start + n`` when ``start`` is traced (default
        ``start + n``); fixes how many bits of the index are used.
      scramble: random linear matrix scramble and digital shift from ``key``;
        ``False`` gives the plain points (point 0 is the origin).

    Returns:
      ``uint32`` array ``(n, d)``; coordinate ``y / 2^32`` is the point in ``[0, 1)``.
    """
    if not 1 <= d <= MAX_SOBOL_DIM:
        raise ValueError(f"sobol_bits: d must be in [1, {MAX_SOBOL_DIM}]; got {d}")
    if total is None:
        total = int(start) + n
    if total > 2**_BITS:
        raise ValueError(f"sobol_bits: at most 2**{_BITS} points; got start + n = {total}")
    v = jnp.asarray(_direction_numbers()[:d])
    shift = jnp.zeros((d,), jnp.uint32)
    if scramble:
        key_matrix, key_shift = jax.random.split(key)
        v = _matrix_scramble(key_matrix, v)
        shift = jax.random.bits(key_shift, (d,), jnp.uint32)
    index = jnp.asarray(start, jnp.uint32) + jnp.arange(n, dtype=jnp.uint32)
    gray = index ^ (index >> jnp.uint32(1))
    y = jnp.broadcast_to(shift, (n, d))
    for k in range(max(1, (total - 1).bit_length())):
        bit = ((gray >> jnp.uint32(k)) & jnp.uint32(1)).astype(bool)
        y = y ^ jnp.where(bit[:, None], v[None, :, k], jnp.uint32(0))
    return y


def uniform_to_normal(y, dtype=None):
    """Standard normals ``Phi^-1((y + 1/2) 2^-32)`` of 32-bit integers ``y``, in ``dtype``.

    The quantile is taken of the smaller of ``u`` and ``1 - u`` (the complement is
    exact in integers) and the sign restored, so no ``u`` rounds to 0 or 1.
    """
    dtype = jnp.zeros(()).dtype if dtype is None else jnp.dtype(dtype)
    low = y < jnp.uint32(2**31)
    k = jnp.where(low, y, ~y)  # the distance to the nearer end, in units of 2^-32
    u = (k.astype(dtype) + jnp.asarray(0.5, dtype)) * jnp.asarray(2.0**-_BITS, dtype)
    z = jax.scipy.special.ndtri(u)
    return jnp.where(low, z, -z)


def normal_draws(key, n, d, method="rqmc", *, dtype=None, start=0, total=None):
    """``n`` draws of ``N(0, I_d)`` as an ``(n, d)`` array: i.i.d. or scrambled Sobol.

    Args:
      key: PRNG key (typed or legacy).
      n: number of draws (static; a power of two suits ``"rqmc"`` best).
      d: dimension (static).
      method: ``"mc"`` (``jax.random.normal``) or ``"rqmc"`` (scrambled Sobol
        points through the normal quantile; coordinates past
        :data:`MAX_SOBOL_DIM` are i.i.d.).
      dtype: floating dtype (default float32, float64 under x64).
      start, total: with ``"rqmc"``, the rows are points ``start .. start + n - 1``
        of the sequence scrambled by ``key`` (see :func:`sobol_bits`); chunks of
        one long set share ``key``. With ``"mc"``, ``start`` is ignored.

    Returns:
      Array ``(n, d)``; each row is exactly ``N(0, I_d)`` (rows of ``"rqmc"`` are
      dependent, which is the point).
    """
    if method not in ("mc", "rqmc"):
        raise ValueError(f"normal_draws: method must be 'mc' or 'rqmc'; got {method!r}")
    dtype = jnp.zeros(()).dtype if dtype is None else jnp.dtype(dtype)
    if method == "mc":
        return jax.random.normal(key, (n, d), dtype)
    if total is None:
        total = int(start) + n
    if total > 2**_BITS:
        raise ValueError(f"normal_draws: at most 2**{_BITS} RQMC points; got start + n = {total}")
    return _rqmc_normals(key, jnp.asarray(start, jnp.uint32), n, d, total, dtype)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _rqmc_normals(key, start, n, d, total, dtype):
    """One compiled program per shape (eager calls would compile each of its many small ops)."""
    key_sobol, key_pad = jax.random.split(key)
    d_qmc = min(d, MAX_SOBOL_DIM)
    z = uniform_to_normal(sobol_bits(key_sobol, n, d_qmc, start=start, total=total), dtype)
    if d > d_qmc:
        pad = jax.random.normal(jax.random.fold_in(key_pad, start), (n, d - d_qmc), dtype)
        z = jnp.concatenate([z, pad], axis=1)
    return z


# ----------------------------------------------------------------------------- families
# A family's draws from given base normals: (q, eps of shape (n,) + batch + base_event) ->
# (x, log q(x) not summed, stopped log q or None). Location-scale families and flows only;
# ``None`` in the stopped slot means ``stop_gradient(q).log_prob(x)``.
def _loc_scale(q, eps):
    x = q.loc + q.scale * eps
    return x, q._log_prob_std(eps), q._score(eps)


def _diag(q, eps):
    x = q.loc + q.scale_diag * eps
    return x, q._log_prob_std(eps), q._score(eps)


def _full(q, eps):
    if q.scale_tril.ndim == 2:
        x = q.loc + eps @ q.scale_tril.T
    else:
        x = q.loc + jnp.matmul(q.scale_tril, eps[..., None])[..., 0]
    return x, q._log_prob_std(eps), q._score(eps)


def _low_rank(q, eps):
    r = q.cov_factor.shape[-1]
    z1, z2 = eps[..., :r], eps[..., r:]
    x = q.loc + jnp.matmul(q.cov_factor, z1[..., None])[..., 0] + jnp.sqrt(q.cov_diag) * z2
    return x, q.log_prob(x), None


def _flow(q, eps):
    y, logdet = q._forward(eps)
    x = q.loc + q.scale * y
    return x, q._base_log_prob(eps) - logdet - jnp.sum(jnp.log(q.scale), axis=-1), None


@functools.cache
def _families():
    """``type -> (map, base event shape of q)``: the families that take given base normals."""
    from vikl._distributions.flows import InverseAutoregressiveFlow, RealNVP, SplineFlow
    from vikl._distributions.mvn import LowRankMultivariateNormal, MultivariateNormal, MultivariateNormalDiag
    from vikl._distributions.normal import Normal

    # (class, subclasses included, map, base event shape)
    return (
        (Normal, False, _loc_scale, lambda q: ()),
        (MultivariateNormalDiag, False, _diag, lambda q: tuple(q.event_shape)),
        (MultivariateNormal, False, _full, lambda q: tuple(q.event_shape)),
        (LowRankMultivariateNormal, False, _low_rank, lambda q: (q.cov_factor.shape[-1] + q.loc.shape[-1],)),
    ) + tuple((flow, True, _flow, lambda q: tuple(q.event_shape))
              for flow in (RealNVP, SplineFlow, InverseAutoregressiveFlow))


def _lookup(q):
    for cls, subclasses, fn, event in _families():
        if type(q) is cls or (subclasses and isinstance(q, cls)):
            return fn, tuple(q.batch_shape) + event(q)
    return None


def base_size(q):
    """Standard normals per draw of ``q`` (``None`` if ``q`` cannot draw from given normals)."""
    found = _lookup(q)
    return None if found is None else math.prod(found[1])


def sample_from_base(q, eps, stop_log_prob=False):
    """Draws of ``q`` made from given standard normals, and ``log q`` at them (not summed).

    ``x_i = T_q(eps_i)``: ``loc + scale eps`` (Normal, MultivariateNormalDiag),
    ``loc + L eps`` (MultivariateNormal), ``loc + W eps_1 + sqrt(cov_diag) eps_2``
    (LowRankMultivariateNormal) or ``loc + scale f(eps)`` (the flows).

    Args:
      q: one of the families above (exact type; subclasses are not assumed to
        share the map, except the flows').
      eps: ``(n, base_size(q))`` standard normals.
      stop_log_prob: ``log q`` with q's parameters held fixed (its gradient
        reaches them only through ``x``: sticking the landing).

    Returns:
      ``(x, log_q)`` of shapes ``(n,) + batch + event`` and ``(n,) + batch``.

    Raises:
      ValueError: ``q`` has no map from base normals, or ``eps`` has the wrong width.
    """
    found = _lookup(q)
    if found is None:
        raise ValueError(
            f"draws='rqmc' needs a family that draws from standard normals (Normal, "
            f"MultivariateNormalDiag, MultivariateNormal, LowRankMultivariateNormal or a flow); "
            f"got {type(q).__name__}. Use draws='mc'."
        )
    fn, shape = found
    n = eps.shape[0]
    if eps.shape[1:] != (math.prod(shape),):
        raise ValueError(f"sample_from_base: eps must have shape ({n}, {math.prod(shape)}); got {eps.shape}")
    x, log_q, score = fn(q, eps.reshape((n,) + shape))
    if stop_log_prob:
        log_q = jax.lax.stop_gradient(q).log_prob(x) if score is None else with_score(x, log_q, score)
    return x, log_q


def draw(q, key, n, stop_log_prob=False, *, start=0, total=None):
    """``n`` RQMC draws of ``q`` and ``log q`` at them (not summed), as ``_targets.draw`` gives MC ones.

    The points ``start .. start + n - 1`` of the Sobol sequence scrambled by ``key``.
    """
    size = base_size(q)
    if size is None:
        sample_from_base(q, None)  # raises the error naming the family
    eps = normal_draws(key, n, size, "rqmc", dtype=q.dtype, start=start, total=total)
    return sample_from_base(q, eps, stop_log_prob)


# Joe and Kuo's direction numbers for coordinates 1..1023 ("new-joe-kuo-6.21201"), packed as
# described in _direction_numbers (zlib + base64).
_JOE_KUO = (
    "eNoBGibl2dkCTNiShEid2bQDQV7Lw2Hho9KhNuJjmK07MylPgfbPmJ8x4hzji+RoDGjpkjqnFvj1VZo85iJon3gSBB0yXZTMcpTtYG6uW6RlCWot"
    "0rgNw2Hve3G8x9UO0B0/mY9Fd/6+wLSqWb4ml2sYRe/RaCzHnHwJ2UElBzNFJUdOcehCy5Dpck6ON68+xtQhX4cMIN1csZ+4Qkj5xb/3V6KWrUII"
    "y5C9bvDbRBsEIhAKJlgqsWiw57P5GRVQ+0WyxVHYc7UvXmygO/NO/TTEbjcGz77yk7W87YxQPjsumrgEMWtffJJKdUbiehUUoNQBQVJ6xwfe1XwS"
    "oMoFWzvMN/816gv2LT9nJBPr92aE7el5kG1WNdW/V6CAw2isfDw5yDEImU60Z1eKgdr/8Yj8d9pVmJFEAufEqYKLg4ZPnRTLpGcKere+Moet0XDJ"
    "05sGLt8j0bUqxaNiW2fMsLziueUMeN4L+eZprAfCACEki9x53qcG8dpmW1QdfcpKJeGu460amdlOUxUDeE7m/ziF5q6mE3IpbOy6WluHzxxuoP7v"
    "9ElEs6bP2vpIPUkCTkJLi3uUGtFN/+hvMJxoOv42SsLHJcPhansZfSYRCCXAb5T0MpP1IgI/8cqz4oiuNMEv8FQxR0jATn8Q18C+NupD85qh6l2y"
    "6c83J4lgLhE/tu59foOpDSYSM41MBGbffI4JqpIk/z6tbRNMcNyGdw2FPB0bRZreJQqRlZ2nEZV9ta0IgXJa8XyGMlx1hGxe5rdk5j1KpUyqcllo"
    "vvJDxzhoaAs4vWSlx9lg6bQyZ5VlT89BWZ99wvpCgfh+nLMrOepiEmcG8u5iSFSA7oVuIGJTVP7Tt2mNsx/lYMYKQ/LDJqPiSTpNx+HtFiWl7+4v"
    "oPGeEW4C+MAufn5sRk2y+iRmln7iJmtU5shLUAGwDYiAt3s60t7jGg1Wu34WJUo+6y/Vr5NXf6HFnsM4H+c3HcE9edvPrIFhUSScy7OXEDvTx/TR"
    "lMkHyS6XTdgm35ZSbVCAzbFFs3WT3x2GviXYr8pP9fq7fVTZ6Wx+rjbJ7WMjADky6yppNensWyPnfXBX2uVP0VE8/8vPRfzLtr+BmEdjmWcAr9xw"
    "9OBCdQF+iuuodvEYwVXNG3JZNS5AssqDIeTFrMCOAPQ617sTaGL0QE3axs0cMjdCOuLthBgcd5TwjdL3BQ9sWK2Z4AgOiNGOQ7A15wsEorQcc5W9"
    "tcJ9+OC/ou9/cVIGJtg0ReBAsOCM4oh6NsRnczHuw44w1jQzZ1YTYo3CHAltPve6x1qOZ5uldrXeHsdRdZtLhRjbQ9fkJqQC2q7iG4SsfJOl/KkT"
    "dgAhvWrg/JIC5CbobgaUShPuZEzcU9gnei2QT7affhPMBFcbtMXMSiZZasOjIphFJyjLRmsbUAKgpnd5Ionf6VuPcGEKdxgMuauVeNf6nfpdfoIp"
    "GPeCWC/2fiC7l2I3mCPFf75CWIYMcexlYyVJZKavzzKlEFyJ81vbNksioGsZufy2rLuDDszjh5hU0FL4xHY1paGXJUdLPKLBQYBSNsMfcSn4TZtb"
    "itADF13VG0ofyBgLPiKpK1KUJ9RGQYoUWxIVBVeQhxxVCRRlGdYk91nakkiqcz+Uyz5MG92xvLBVfKbIzRYzvpWpU8mCHUecLsMJ+2RYGF4vLuUK"
    "Co3oDEFzWpCgyvpnLUbFTrgkbeKKmwSpmh7HpreQGFVDz+NJ6xkdqyqtW0BGjSIVpJA5fbFe5KtQ9fqYjF2ptb1tJ4Vf7KSC6RakjeTR2w13Rbv3"
    "1hieyLxezWGmF5V5X3e6otd++j8wOtBIJ/DLTFhHnfwIC378rEPic+Zpic+2ZclhdX85vxM+pTfN6EK1caBJE6sZ+/W00pMsBZKtsF1rCGXUukTQ"
    "CTXj4yb9TdmGGyMhzZd/TH9NvZ3xGfp1b5b7832V7hUpS4f2Cjzvq3UxxaaZKRD1BkLkiKCAECqRC3KRkxBW9eRfuvsxKpPpiY2duAspQGFKb27x"
    "88dtcdc/h5ONJBIoi8Mj2z+skF5SJDXueU8Clc07Pvnme5A8u/+4fbQ1LB8ZgJVAvNmk3f+5niBjQzJcEPPaEGWT0onUhIR4PY+BNM6nqfxWCRnV"
    "NirvXjAKQtQjDXvXGsyUtaKwwTiOUTxzCIznCchNRVct8RFepE3r3t98B6dyX5Axbh+VPPk1ZSiGA4fMXJw/0GpxDWByWcdGjoIEJXEvzelqOhgR"
    "/pje8XMxH7ybzMriTh8p1zdmmqi/qO8GK7NRuPwEsOGWCcUvLLnYt1/U6Cos7nMgi7J7VWu/SZgs60C0CteVX0hsocUVfQcqV29R2STQUYRLZWk2"
    "zA7vhIR+VLQouq0LoQGKg1lYgNOSvv1HE4imgcqYIqoAoQKjewHfVgaRmVpagDKsU4AziV8rM1b33Kq47w9ba4jPe7aQbY82S7GkdkDqtBs+QP1i"
    "CSNRDahK0AOSaDgK3UNttQzWlXNva5Fe/UtDX7kXoF32vNm53XaI5Zs4aT1u2pSZUOLkQreBD2/jKNrx686wg+kJFVpt9bPNrqTDF2sCW9GAZrS3"
    "h4cwErV24fY1xDzBaIijr2zifv1G0Bv8PrFXwgf0UH6YOM1FpCx9znw8cdP3Y/kOXU5GvImsiduoQyXwIsuHxqPxlWdaSmnasTvL83fsi+5T1ecU"
    "ZGCDk2A+897mAswWnh859UoTl3mEFf0A+ta2cHn7dpJdWZkq6eLTTwzMP5hsb62olTBxzuwxOddsGZh5cs0GbPyctZgGhsW25k6WlEh6TdvKhj0U"
    "ZLLI3fHN2cmYPC7XCo5nU/k8pl+MZPxJnklaF8xxedJjua+b5srVzmPcLeP1wq3bhe/ztrtT9zcIsb7ovbQgGd38gh8e6AeqwhT8zH+CDuLB3jyP"
    "z8gkiygxTUpj5cJ8TewCNP3zbdXxyXUqIXpnJ/JNwlQqPW5Hq2FyZ5me1iqY1wrrC4+byYciXivj39OpRKm8/2hj8ucPspLhFKX6Zkq6EhlNwwUt"
    "j3yhHZfdOeA0gG+dW+mAuC6B7fcNYO43lYgKD609ZU9nIzn2IJir9UEoehncfgaHawXtP/BCgwA67nfrYLW3My3CDd3lqsoCM9H3Eea8mtrB1O16"
    "UJHFimiWNiPFEkTsJASrZ3/RQZgp43d6vf11wfgBV7VxkR/mGQnJiwH5IaSTgaS7hFqs0eb57C1mZ8MKq1L/b3mReJQbNna8yIZgQW347A+t8EMd"
    "iahLB3yMeG0bJKjMBkGsKI+iYFa/11I3bvOHqzQRKIKR49UQ7x+kFPnYmYmO2nicAR1uBOSC/KJ45YHpWSfg0JapeQDz6BFcNGHaJ+4rJLULAt5y"
    "AfyHlXdKWX2ISJpU8qBJQw7qRP62dDL1Ihjr/YEhEAsbX8TIGmhJXTH69raGcfM+t5MwF8axM/sXuCUkxA4AqaYfq6j1Mkksf43AwgRXMJa/VdJz"
    "KWhNjTDdqPKzo7Hj2b71RmTKHU333V5b3aafqQGH/fuuEuDfQOhjAp8rHxeGv1FDYR3dnEzeV3W6JylUSlBZXiZb0XYyZRExkfcMjozzmphQUAub"
    "1vR1JNt2GUxzkySlMizwPB32M9GlKxcG15EsTomTqaUq4Xj/iL9fkVDyzofk13JWzNqO44JFHQi6JCfVNNBF4VsA/IQusnOZN0ZY+KxItcWyrezQ"
    "C8TNbC68LkMlpXukOk13CAtiB2w9uZ4r1ivrJGrrY2i4YJRqH2BG/fEJkyNCnitntmcZD5lR9kD0SwLElprLGiSlyfEVFsgmpBF8L5HNcq5oteFO"
    "yKX8hgHWzcVusxz8GBBjG84ynftVXEPwYZ10Jxl5trPU3wXzopWPqoGknvnVndXKLbyAvwoVXPEtrJFi+6k7+YetprKsCPHpSuy9nViUCk/uBa2t"
    "75O+F/Yamignr4L05eo0bePqOoVqfN0NP5ObJgQuq02sbT6n65QiRYjPhe7oZuNPEt+EUtc1HNOxGLh3eSUV1rtZ6Ud/fM6miJPPC/pGtsgwYuqQ"
    "rVwSa7LKTFuJh90LlBNLRUS075PydLK61ZyaHjOyJ2XsNgPOl0ABaN8xcDrsdcwpesqJsRfxjfG/oBSvTeQnTY8PSp7lanJYUJv2ri1tP7Of0Cd5"
    "RrbartWeZbTbn6Y4zrX9DSquydG2a6IfaK8+yhzlHdchx0ZQ8OSnveu8xYppSktaDK+1/1rUXwGvO3QJ1f/ytCgPWM3ElL+v1cOvGw785PloGq9M"
    "JcDfcWPIXfWFxqW4jxuMqVrsTXBWXXGX7q7tY9S542qt5Bi8W1cfYPR+kH3G11yFSFJeoA5KfMrprtb7Pcs8nT13fqzqA935fQ1KvBtvi3I8zp93"
    "nen8u5KBfxspjrASvnTGKz8ZSnWCFJNes/x/XNu8FpfYQ4Wpeh8j4Tpk/F1selBOFxMQznIr+YkMiHkOdRtf+kCL1i/J99GEvWahBgU2UvTkU7yC"
    "dnqFsupxDnklEv9RF5iXLE02/YHwHYzJye6illB9ZZTmcircimPx4t2/PJdT6vqgkM7Vmgxge5hc1AW6AdI8q5egRtHXBtahZUiqBOAHOmb1QFRz"
    "2UklQ/Upq1jQC8niwAquHXXBHktsAbqADGwqZC2KVKXooRNiDGqJDdeKfI58KbpZBWq0x0aN4ZlgqGToRSzgJxc15tgeu/R37LkT6coTtbYKbw/K"
    "EptSPaFqryi+Z9AZujs5Mj3785rEJGITKh6N06OV1a6EgqZokx3GyiTAOIp5rFnxDDjhIMB4gOSPjZQ+sghKU1D3fJzTgEKnmpSbF+41RxvF+cFe"
    "6x+YQYZo8VhbtHb90JV1wcTUDBjr72ohsCcB5u5sv5JOdwHIJiIfMwDRKSnLxX1Tp31UgE+DisQOzhl7Ty2QGgc2knU+LDIh37QKdiM1S2hDqmNP"
    "zwMrt5eb3T15jXjxAN5ChsRMc6VUsEtQRVDgqTK8enuzN+wRoPOsNqBw9sCE8AT1CPo970hkkQJCgUtfvgrwDDBBRWYwVy4DkbK51patVXAXcjUJ"
    "2nIlFIOsEwXjEE3k89TE92H6wYVPS6DtV9I8BLKQZL7+Txwc6eaDOlwcIrY96tde8O/8pQeUCbQqiQwOubSVQhk71U1/8LPCIvWQiqEVLtHXlsvg"
    "iKglMGoTHkmH+bf4lwl/6MVha2cgsGUkgnQeyucQ4+67RBDgocENxX3xypH9rqgsxYokvlJC48T0qQtcbKXzLqasbDfjAvGY6NaRvfxg5DVwxKv7"
    "RmeoZBh8jiwy+oMInCC4AUUcOwzvj09IBkdLJ2Vug32fTFsF252RUIsQ4AMIXwwJ0lvUYSA45Ckf21xPfA5U7Q5uUrpZAjgx7eJjg7yOsdPhT2cZ"
    "p3og8S8V4c6USs6+OSw+IVj29KPTKPE4Yg/Q3Z51DHm2jfT3BDBRGRDrFgX/1VBhEv9Ng9IKi7agszxG+TBGJor8VCVlRBHsPkKjVEaFPbN1RIT4"
    "dSgiantX0/IhLSKKovdlpxtb0pxLve5vd6CQlz4f1hPCZO2psvooK9swBP4ujILJprfLXv6BREpWHi4FQs1tAnRS9D/0wMMt4VgDFRTRfGZ1cyE+"
    "6rTCBWWpGvVhTzTJG7yBX0Dw2sNrfa+PMLxZgw8IzAehclt1xhd1oVKYf/7IkKiTBe4WOp7aWZIpBVJRfe67bK72Gqkg8NBgld0VpYsus7Igfxky"
    "Ug6BoQAGSN/1BlaOERGGfe0go3iRo4lSWsVysKVoDrBqh2zWT95jTy/duhrDW3LcHA930Abpht0j0Lsauk5nC6GxuKo1n9uMNSfQoqxvtgmZ1oME"
    "PuE8fhw2fEYOomBSAP5MBxl3aOqdzzmGyFHhyqUTwGRCkBlxuvh0YVUCw0C3LSzgex1GYV8bIWCYEiRux2MuLnvdKAIQzyiB27QIFedfvVPyBvB3"
    "fLSTbhmTmu86Ih8OesQi7SVQtQO5B9udkokfvoa6K/Zx/GhHXHkHund4cAyBRisRTC/OyD29WCCZTUmLamtRUBQYiD7x55CDrH6k4AXiEil3zEdK"
    "g9lkLiyFH+sB4pFC51gmgSHk2fQ0YyQMKqp/yKPR2KPOlXPDlkySKy+49Z1pOLDzENyMNbxlEqVDAravHCNpqi2nCUNB9Ld1SP7UJfT2lpKH+RLS"
    "QQ/9Mg9KQrMu4GSTc6lXfm3F9xnlHSTlIuiyAstISf+YiWkVjxjuLQ4S3/PCX4k9TOw7j6UJYeiYNZTvwvza+RZuqCY5W+i/aM+fV5G2SZfOGLRK"
    "IzaWR8dCcfcCnh9Qs0f2pkShP2FDHOn5QHL7Hyi/ESVuSb6qsURJijiqu02lcnICXPjCkPUesV/KHGdPJmill/o+4x7WqFDaRSnBo0ixHDzabv1h"
    "yqfbyMEGHA+WAImyqs7hYUzw0riLC6CsSwMcGf7sE2wzcCuK2PdfmtkuKCF9iu9iTtprdG31wfGyw5tD3O8hjqfmxHixfQX60D1mRLd3MiyqtL8B"
    "zjH/tp1wCzKXx5PdIeMH0woCzykvWAGfzjsX8oS1/AhXE6rtYRktUC3pptfxDqlPuoYsS4mj+gj3YxR9/tjy5xkkWiBmfcaVhri67tUN0NMIVkxS"
    "KC9XbMVJbokElVMQzAW8aOWcQmEqU29TAk2xjTcQMWCC/xTCDvIaD5rhheVQGjFoKphSVc0ksLEejH5YoddK5XbqublTJRExZmzHEDzwSdDKeUrZ"
    "H1xTNrgXBzLNhY7tFTex1LbvzNFz3Bnak3QaesoTO/a4fbr9Y47Sd+TPddAUXwV/jgOXbjQ4GXXWWprnXrb3DSWoqkemZtvgGwOTTP896HdqfcA6"
    "TuTWGu5L2Kq6J+/JUTWxcSyASQe39HBODXuuPzXxWHHTkSTjYc4GLgLDyjHZY4zdZT4G+yezOwzPyTelq/z0c+ZtPGU6ziVRaOt/JPavlF2jlDaJ"
    "tMnoUlHv1djnbk556bdi8Zi92zpxOViRu++Un++ATqxFQQwLCGnfcGWjrh6zb85cgvUmD+DtdLdMax7/xkPTLjuSuEq8CNbcfZM+DvCz8s2udAFo"
    "TI5DwTT3Q9wiL4xvTfjyP8RdS+7NhC4TLT0Bm+Nwso6CH9HaT3DQfrIy/AfV1QMz42L+xgVkYBk0Lkz5WABUmiK0Vya4yz71T8I8DFlaIyvST93l"
    "0LnSDTqaHEIj+DdWSElEXckcMeUA6nsCUmBXxewqckDLklO+gYxD//RjED8/2HIregk1b7iEEXxYBaBjyo0XeikGMo1ADEJHVKkEh0Ha9vhkXVAD"
    "69fdkHirIDSHgTv3Y17kIpnr9fIURg8WaQkMxs1qQlT5cMXBxUOsLlUIZ6CpluqJ0Qm846UB7uu7atxkVaGZ+ujJk2sV8ZEVke3P8FU8hR8T40X7"
    "4xOPYDpZ1GxmUZl8D7IvAIcaU3uEasXSpzKGIAICUtEbyNrxZA9U7NVQlEcRem1f3awhGgOg0dOhcSh3Bw7VaIJEfdV3VUa8uyMlHv0hHCtuC0V2"
    "S7XoxEh9+rOJC2gXxDpnUiDxf0TOkxMqYwR0jVCvX3WlhhmeDwElaBO1u3Pb808PvUmnX5vFRNz1lg7Dkn8qKEGDfMkqmSrkoHezcObDcDc1j3Up"
    "bhKwlvVzaBjO6EqhptZ8LaJp5ya+Uu4zcAmnN+gZgQk0vpyCAcpRseVktV0wB4CixevK0c5leUyaUk59ok8hCkMdUzx86A7LwOxso8n014gx0KFy"
    "y14KjQk2+UkTu4/MjqyRmE3h4JDqP93RNsOjU4ZtaoVVZurIw5ik65oR73RzjH5A8x0+ej/gTMorCAvvaU+sBbVAUNr5m6hW1Aaq6ZbEQY9q2QWl"
    "B9gP/2rlRdMp/QVDsvFsZzLdXOQ70FEE2jwMg2ESs7De1GfXvgkGxKHFQx/1GoBNFpkHjTZiRUlJiYGkm/CJFgrFz1NBhLfj4hsd/Rgd1N350DIs"
    "9eVvfF8VOH8//APjCJsUf7FPXkx45JB3zpawF1PrmLGDFpOIUs63VUhrdWs+hHt6LxV1VG2GNbGu31Xy9OVWPTAaXHgU5Z4CIVYsgaACHydRCDLg"
    "la/JgRC1MdrgTAO1ba2kBr/vqD0mOq1dWOSenY4rLjIb5FeYCfu/pmt0fqqkVgGiF7fF/gQ36UH1ilwJWCF3O2DiuXlkYb/6p/8ID6go3Fkq9Yeg"
    "3IRxbsgoVl+lSGCxsqvNoYPFm5kUMDh4bumVaZloWPMvBWnJhdM8/lpK+2Zl0RabSQ7HVtjuTHsqFIfR1UTlvyAaRkMEdPX5UT1wgBoNjRiBeuHL"
    "qFy7BR2Uh+k2xXkSlzQ3uDhOc0tRpb211t4hUglI7GNW7L12VdOl1z0lZ9WYJV7Ow3GRmQKZDrB0l8pakDYO1Si/y2tl/rIRg7lioJ2YUamB7ODu"
    "ysdkXdGOaGENDV6xq614bIpnWFSmfiIJWBgLCN0mFqvjqFy/7SXBOEWH7ohj6yO8JzzjEWIJdOK21kz3dRhrmJlmi3/m+9wtOKJWOBZDYSacPUu9"
    "972RUqxOI/lKLfexq2RuuTU2NIK02nOmmSg8R9BGr0P11lvWUbJXoTr6kNIyP02V8CKQBynViFmGHmXjnF1ZRSQdyOE9GYnCUIuafDLeh5l2aBGq"
    "QaKMZiM7XMWa7sUEd9Pb5QVbvGcKwnZVyXTuer1c2czJxa+Uf0FlkNQGdVEKP4FUprbAjjmhv+Xn3XwhBPIM2WjLKz6bb6Fbf2rgWlExob1w0v+W"
    "Oe22lxCwwOvD715/CimmyWoaXbwWgWTdJWnWPYuE/5v/6dy82oj3W0AgpSFQeNw2rbYFQkSsN/OLYS2s++6wnxuFFER8QmurWaZWNRJPBJKQWxH+"
    "XJydd3b39FD2xzIPTWZ9vqS8gBW0yilBQE2lID66dW1XbkEFBHyBATrOW2vsIwDE+xUTby0G8UaPwohNEU3FL+m+JWbI2lFGSuWtlm/jpn6kIAFC"
    "URZ33AyFeU54tYsY9xEnCe3dOzF7JseGMWHCkuJgQ67AUi7ionFKKJvoIwuesLzgnJKVmVD3kCl/capHJ3FZx9xU8TwLT3XLZBVnCwuvNLaty3Li"
    "wKEH+Hcd+A9nHMCXnpB7XQLRsHcnNXJ/7Bz4Mck02H3R/8j6WqskeX6NzHSAuIvxGdj1DHEb3S3/JG6jrG0SzcQXToCTOMlmf05QmWXVYYzjc3wq"
    "gobQ1nWZuMyuA/ivV5NaHXDzZKITfVM6Zj5Xb8dtGkcL6XiOVl3fSAnE4DlzBpjHUnfjr8bbmWvUFYn33gui71il7Q2xaTIHhMNhj28rGpmAp+Hi"
    "CGJnkC+3+wUkFni9ic2qbqkmPDo63nwD8J0gow7n20xXoLgRmjbzU0Dadq3pd805dDK3Lf/FnnpmDfXA9oHhKQZDnrB6QWOCT+57f2CnrzIhfAV3"
    "MR9JEinss7S/ofJHVz+0WHtKiTP45Vja+eHG3ynKpg7QMBgW0/Hn0nUcj/RupuIFCuH1+Gy9OWNPyW6Qjn2B6MIbxgTdac+IX528k12nzEQyWi5n"
    "7l7Qj7ocmOnMIm38y07U09r7mYwy1X9rHgF+QJxfddL1H+oDuVQdRSY29boH//RoY6u8LRHQf2oAy/TnW7S9/NtCKYCmcHd/mRx2UXNg4DN05PHU"
    "gFWwYBWoF8OtaYXnMbagfTYJDl8pzuq2YpyaiIJ/SzCa8Rf5Ye7CoM+i4t1RMZCzPjCoPMc3nYKNdH4R+84PyKpDBfmvPWNmsoSIKHNugKWEdwk2"
    "IUMRWs1lbi/QAWLoWkBlsSefXMTTXjoX0vGFgxtjdeteiIYAI7h0wpU/TLw8YaRTpqaNx9ejwO74bKfd0BtvLHMJbjIchrCBT7Z/xPgGBId0SvA9"
    "icOF4O+04gp2hd26WusH1n4Yh8JHlzTbhWWh0AYmlHwtR2L9+4ZFDoo/JoesLpuGhdInIpkFt+qwm2zw7vjor72oBn2ZITbXlWIsaWwUPYsfYNx9"
    "7ouITqJGQpDCILh3oveHyXqvtSrsamrY0dMjDGEWZY4tjNo1LXgbaLhXuG2ypI28c/vEoMysDBeM44oC5idzb1VvuHN45NVUZJd3GsR3OA47by1b"
    "mqg+tLDt748H1VinH5R9fFqS49aEUtX4mzz9LNl49j3h48fWvGedIM4+RPPGOrGHIdfArI/+LdfLo7WobK1zZBG0dOtP+NQykaYZB1WlYkSnd3Wh"
    "xBpDsy63/b3L+odoNpEw9LegotC4vbHZZHBdhjXGeQUrnYEpJcmkexiGZyPgquZKS7TqqjYKfw4Q0pLM2IyoK5qD1eaS5Mh0sjtyEO7hRNX5QHUs"
    "RtVNFcrIlqpSW6qkQkVmEdqdvpTLv0kHSu0ieuqp5T4ptRvYG3//kxipVGV+ief4yct12j5W1Gwvcdzdf3GT/pXecl/vGVkePftbJYXPlwPwdBNr"
    "A6z5a5L73uJC59dolAZbRjg1ZIS5gTh5GZc5fkXrhlkM5QoPZg7pbqbLRHp7iwLJijxSj7GIRfOesA5l27ZrF8X3PwefY5qLhOLiQ9G9giay5rsc"
    "veKOEy+l/Ak5ujJTjqtXAt9kU7JyzCw+eTtYfFeNpZzRAps7+eq2PLfq51YGhs9kADPdaoVJ3JU5TuLwrKQ5N7p4GVwhtckgq2j4x544ZrDgFMCZ"
    "YKHmZ6nSczXlIaAEYsk58f6h1b/3pQOaLrZ8ukD9Js4kXF9Esp+85FAw8V5fK2F2Z/UFUo4iiDcKCUn6BKHRki3dgzCxqN6DSR3exJTD4nrbb6E4"
    "ZXdqeInRpJPGKIJbO186YGF5cgzKJh+krldNsEzxlVKL/dmrQfwPbZoA96NHR1Qhu8329+gxaOwHld0e31SmZakKPazKE0RfXNZCXlKQ0ZxrxtBk"
    "WNLOa6SWspk8aEl5Eaa2qTCzAIG5/6+OKwNaUtSj+wgsUyZk8OKXmlMst0Bl7XHkHaZCy+4YZScHKuP2qbchqPNP3pI3Opgac2+dFrz1uXLtr3af"
    "AVhZK2LBZzHg/KhsGkS7ApF/TMEGaj/ixn6a4CIT6zxqkpACZifmDpMbQbqmN6JJkyvmbXkrzqmyP2Yp0mLw8KPOqoiLV5bPlaI/Mobqp6YsRvhc"
    "bxajgTarh46FCB7Ld4TFo6tgNN2mefjzvQ5K6uYvwrSGJhPCOg/Kv3l+V+cpJgfQ4FqzvbaRBk9/dSwWV60FOHgHOG81q5SMK3JGxi1oTIql/6UK"
    "5h0S9QAxWksS1fa6r3TeWlc89Wyw867BBkGJcQMYxACdK8V3MQ3Q+hHhlThK9Id4eJixmrRO2qK9wHNCpC8fscB2kbAKxA8PFIV+n8dmbBU4bQnN"
    "TMBwMJibDwpxbkje0ovdZ6LEnFNJiEjb4ulLwLF31HLmA8yY5Ssq7HadleUmSlDWzhGbJMaw5ZNpzvw11vrKGlSrESqngYeisrLcnDEoQyfVOpMa"
    "bOcE8wanwZm6iBM7OtfqIyI+WU+JbX7SIHEc2/+w2PLtgbTb4xa3awd1YME5LTpp8K3UcIhSLKbbVnI30t40gixyIs7ZY8T6SAEUs1youraeZXX1"
    "aHJ/lpjhraqiqWer8WDr7FrrcSyAbzwEBO1Rjh7d4NTX+Qats/x1LbgvaQKoX6Bx13uKbh6nepqG+j6AGLyrjXzbBvOBP1Jx6orkO72zT9wZjGux"
    "j7li9PfgqGe8+Bh47nH5HcU2ImZGMHwboHWO0i2A7F2j8K7o2bFzkcBt2/nMPLqRYAnHtKTFAC5nbuBN5Vxgh31nvtq7u+3HqInQxjZxPNrxY+Cv"
    "2TsA0eP2Pbyj8m+HN9Y3C8O+7zGBiprMd/AC5ZMb0cAeZ7ONIYzkNnL4ipox5cPMPAVyCL5w3PpGKRLou4aMb6Gmavj3tI76QkUL697eeoKggxFJ"
    "/O77lqCuxdevsM0fab8AY1VtJCDTptSU7+U4/wDXIsu29ZtsAb3Uq3TawVg03BsAkHdcCtLIrfsA1MC+2pzXneoHtjItMDjcFma08qpAx+LMEwAN"
    "lpv1EGDU4psGfPtTO/q80iKHHcJQwJEIQEZIlwPBsLOFczHJmxrshrBMNAKqMhWH5lyeZisODd/uXdMMcTR2RMUTub3G9vKcyQxPMWD7FPrUSVw0"
    "rwHsXdpEATzIwsRnipsZLpqJY4G+EkHbEsZ8LM+2ZZQz32NcMcExI1XwypQPaIsceU+qICaBM59vv6MfN4wFHQcDpRzkP8gDdabPUP3jP6D38g4b"
    "52h8JAYWe6ZshcJnWepKRuwDzVciSCYP4Qcvtd6vs8mLtNMr2g4myA/acp5rz0Spbol2NZNMs0pRjTK7QuBikOsttgz3pUkrS99mh8wV+sRAIVZh"
    "FSOZMwhLGNoA2WT2AuO8ywk7YB83Cfk4exc0I6AVlMmhW1Xyus0/jeD7rnlOpEsWM1m9hrikrZtlBQM85dMiF+RDV/mnTiM5nnjCpkyu0dhxo86b"
    "RQ3Ge/eHXayYs90FlX05KM4NumEM+zxfDT2gIoqKiOc/iD/CIBdzz7ypR9A/Jhw69wnwNAKx9FGgDmSZDfExtsqdF1OwyQ2+U1ylEK9HiQEQubJq"
    "mSpr59KJRUEUByu0tvNYNLq042/J0eb0TvmtMHrRdATiHtLioK9Mwv7iQ1FI3YtzcNOXI1NF2WCDHIDdtOr64tQpbORGy4JtRDBDpkuts5ad8/NX"
    "J2qMxJCiWG+K8NX+SJFY4AuwyMoStZghsA9zOGM0BO6tadJvXD8MeGWqEYNaphYONWvGp1COKNb2fFmaAOPLnONDtciCExDjLqvlzvjddKp99jlY"
    "DVQuNudfYyo/yjY6JI3xSNiJSO2DgQ8Bqyq/9lUB0z+TYpQ3S809ltCoVPMsR73a/Btmu0De0QDVL6AbIdnyeMJ+4FAVVnwVdqfaLKRFfEqMVOA9"
    "rF/EdEm7uC6q7kNsT4AsiG6I0JHO39spvGWHwyRzTkCvdtzyJOmNGP4045VtuIYuSGNXavdunWNu3RH5oxtsSRp9v9xR+sE2p3MI50X5tzI15IsZ"
    "CsyPuKKt0lVgkOg/6pC1vPxsIvdx"
)
