"""Bijectors built from bijectors: :class:`Chain`, :class:`Invert` and :class:`Block`.

* ``Chain([f, g])`` is ``f o g``: ``Chain([f, g]).forward(x) == f.forward(g.forward(x))``
  (TFP/distrax order; the last bijector is applied first).
* ``Invert(f)`` swaps ``forward`` and ``inverse``.
* ``Block(bijectors, sizes)`` maps one flat vector block by block: slice ``i``
  of the input goes through ``bijectors[i]`` and its output is flattened into
  the output vector, so a whole posterior's parameter vector maps in one call.

The inner bijectors are pytree children: their learnable parameters are
leaves (trained by :func:`vikl.fit`), and the combinators work under
``jit``, ``vmap`` and ``grad``.

Log-determinants. A bijector of ``event_ndims_in = a`` inside a combinator
whose own event has more axes sees the extra axes as batch axes; its
log-determinant is summed over them, so the combinator's log-determinant is
always summed over exactly its own event axes.
"""

from __future__ import annotations

import math
import numbers

import jax.numpy as jnp

from vikl._base import static
from vikl.bijectors._bijector import Bijector, sum_last

__all__ = ["Block", "Chain", "Invert"]


def _check_bijectors(owner: str, bijectors) -> tuple:
    if isinstance(bijectors, Bijector) or not isinstance(bijectors, (list, tuple)):
        raise TypeError(
            f"{owner}: bijectors must be a list or tuple of vikl.bijectors.Bijector; got "
            f"{type(bijectors).__name__}"
        )
    for i, b in enumerate(bijectors):
        if not isinstance(b, Bijector):
            raise TypeError(
                f"{owner}: bijectors[{i}] must be a vikl.bijectors.Bijector; got "
                f"{type(b).__name__}"
            )
    return tuple(bijectors)


def _summed(log_det, value_shape, ndims_in: int, extra: int):
    """Sums a bijector's log-det over ``extra`` axes after broadcasting it to the batch
    shape of its input (``value_shape`` without its ``ndims_in`` event axes)."""
    batch = tuple(value_shape[: len(value_shape) - ndims_in])
    log_det = jnp.asarray(log_det)
    shape = jnp.broadcast_shapes(jnp.shape(log_det), batch)
    if extra and tuple(jnp.shape(log_det)) != shape:
        log_det = jnp.broadcast_to(log_det, shape)
    return sum_last(log_det, extra)


# ---------------------------------------------------------------------------- Chain
class Chain(Bijector):
    """Composition ``bijectors[0] o bijectors[1] o ... o bijectors[-1]``.

    ``Chain([f, g]).forward(x) == f.forward(g.forward(x))``. The chain's
    ``event_ndims_in`` is the smallest number of input event axes with which
    every member sees at least its own event axes; members with fewer event
    axes have their log-determinants summed over the rest. An empty chain is
    the identity (event_ndims 0).

    Args:
      bijectors: a list or tuple of :class:`Bijector`.

    Raises:
      TypeError: ``bijectors`` is not a list/tuple of bijectors.
    """

    bijectors: tuple

    def __init__(self, bijectors):
        self._setup(bijectors=_check_bijectors("Chain", bijectors))

    # Applied order: bijectors[-1] first. _ranks[k] is the event rank entering the k-th
    # applied bijector; the last entry is the output rank.
    def _ranks(self) -> list[int]:
        applied = self.bijectors[::-1]
        drift, need = 0, 0
        for b in applied:
            need = max(need, b.event_ndims_in - drift)
            drift += b.event_ndims_out - b.event_ndims_in
        ranks = [need]
        for b in applied:
            ranks.append(ranks[-1] - b.event_ndims_in + b.event_ndims_out)
        return ranks

    @property
    def event_ndims_in(self) -> int:
        return self._ranks()[0]

    @property
    def event_ndims_out(self) -> int:
        return self._ranks()[-1]

    @property
    def is_constant_jacobian(self) -> bool:
        return all(b.is_constant_jacobian for b in self.bijectors)

    @property
    def is_elementwise(self) -> bool:
        return all(b.is_elementwise for b in self.bijectors)

    def forward_event_shape(self, shape):
        shape = tuple(shape)
        for b in self.bijectors[::-1]:
            shape = tuple(b.forward_event_shape(shape))
        return shape

    def inverse_event_shape(self, shape):
        shape = tuple(shape)
        for b in self.bijectors:
            shape = tuple(b.inverse_event_shape(shape))
        return shape

    def forward_and_log_det(self, x):
        ranks = self._ranks()
        x = jnp.asarray(x)
        self._check_event(x, ranks[0])
        total = 0
        for b, rank in zip(self.bijectors[::-1], ranks):
            shape = jnp.shape(x)
            x, ld = b.forward_and_log_det(x)
            total = total + _summed(ld, shape, b.event_ndims_in, rank - b.event_ndims_in)
        if not self.bijectors:
            total = jnp.zeros(jnp.shape(x), jnp.result_type(x))
        return x, total

    def inverse_and_log_det(self, y):
        ranks = self._ranks()
        y = jnp.asarray(y)
        self._check_event(y, ranks[-1], "y")
        total = 0
        for b, rank in zip(self.bijectors, ranks[::-1]):
            shape = jnp.shape(y)
            y, ld = b.inverse_and_log_det(y)
            total = total + _summed(ld, shape, b.event_ndims_out, rank - b.event_ndims_out)
        if not self.bijectors:
            total = jnp.zeros(jnp.shape(y), jnp.result_type(y))
        return y, total

    def __repr__(self):
        return f"Chain([{', '.join(repr(b) for b in self.bijectors)}])"


# ---------------------------------------------------------------------------- Invert
class Invert(Bijector):
    """The inverse map: ``Invert(f).forward == f.inverse`` and ``.inverse == f.forward``.

    Args:
      bijector: a :class:`Bijector`.

    Raises:
      TypeError: ``bijector`` is not a bijector.
    """

    bijector: Bijector

    def __init__(self, bijector):
        if not isinstance(bijector, Bijector):
            raise TypeError(
                f"Invert: bijector must be a vikl.bijectors.Bijector; got {type(bijector).__name__}"
            )
        self._setup(bijector=bijector)

    @property
    def event_ndims_in(self) -> int:
        return self.bijector.event_ndims_out

    @property
    def event_ndims_out(self) -> int:
        return self.bijector.event_ndims_in

    @property
    def is_constant_jacobian(self) -> bool:
        return self.bijector.is_constant_jacobian

    @property
    def is_elementwise(self) -> bool:
        return self.bijector.is_elementwise

    def forward_event_shape(self, shape):
        return tuple(self.bijector.inverse_event_shape(shape))

    def inverse_event_shape(self, shape):
        return tuple(self.bijector.forward_event_shape(shape))

    def forward_and_log_det(self, x):
        return self.bijector.inverse_and_log_det(x)

    def inverse_and_log_det(self, y):
        return self.bijector.forward_and_log_det(y)

    def __repr__(self):
        return f"Invert({self.bijector!r})"


# ---------------------------------------------------------------------------- Block
def _as_shape(owner: str, name: str, i: int, value) -> tuple[int, ...]:
    """``value`` (an int ``n``, read as ``(n,)``, or a tuple of ints) as a shape tuple."""
    entries = (value,) if isinstance(value, numbers.Integral) else value
    ok = isinstance(entries, (tuple, list)) and all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0 for s in entries
    )
    if not ok:
        raise ValueError(
            f"{owner}: {name}[{i}] must be a non-negative int or a tuple of them; got {value!r}"
        )
    return tuple(int(s) for s in entries)


def _block_shapes(bijectors, sizes, out_shapes):
    """``(in_shapes, out_shapes)`` of the blocks from exactly one of ``sizes``/``out_shapes``."""
    if (sizes is None) == (out_shapes is None):
        raise ValueError(
            "Block: give exactly one of sizes (input size of each block) and out_shapes "
            f"(output event shape of each block); got sizes={sizes!r}, out_shapes={out_shapes!r}"
        )
    given, name = (sizes, "sizes") if sizes is not None else (out_shapes, "out_shapes")
    if not isinstance(given, (list, tuple)) or len(given) != len(bijectors):
        raise ValueError(
            f"Block: {name} must be a list or tuple with one entry per bijector "
            f"({len(bijectors)}); got {given!r}"
        )
    ins, outs = [], []
    for i, (b, g) in enumerate(zip(bijectors, given)):
        shape = _as_shape("Block", name, i, g)
        try:
            if sizes is not None:
                ins.append(shape)
                outs.append(tuple(b.forward_event_shape(shape)))
            else:
                outs.append(shape)
                ins.append(tuple(b.inverse_event_shape(shape)))
        except ValueError as err:
            raise ValueError(f"Block: {name}[{i}] = {g!r} does not fit bijectors[{i}]: {err}") from err
        for which, s, nd in (("input", ins[-1], b.event_ndims_in), ("output", outs[-1], b.event_ndims_out)):
            if len(s) < nd:
                raise ValueError(
                    f"Block: bijectors[{i}] ({type(b).__name__}) needs {nd} {which} event axes; "
                    f"its block {which} shape is {s}"
                )
    return tuple(ins), tuple(outs)


def _offsets(shapes) -> tuple[int, ...]:
    out = [0]
    for s in shapes:
        out.append(out[-1] + math.prod(s))
    return tuple(out)


class Block(Bijector):
    """Applies a different bijector to each slice of one flat vector (``event_ndims`` 1).

    Block ``i`` reads ``prod(in_shapes[i])`` consecutive input entries, reshapes
    them to ``in_shapes[i]``, maps them with ``bijectors[i]`` and writes its
    output, flattened, to ``prod(out_shapes[i])`` consecutive output entries;
    the log-determinant is the sum over the blocks. Shape-changing blocks are
    fine: a :class:`CorrCholesky` block reads 3 entries and writes a flattened
    ``(3, 3)`` matrix (9 entries).

    The block shapes come from exactly one of:

    * ``sizes`` -- the input size of each block (an int ``n`` means the input
      event shape ``(n,)``; a tuple gives the input event shape); the output
      shapes are ``bijectors[i].forward_event_shape``;
    * ``out_shapes`` -- the output event shape of each block (``()`` for a
      scalar site); the input shapes are ``bijectors[i].inverse_event_shape``.

    Example: ``Block([Identity(), Exp(), CorrCholesky()], out_shapes=[(), (2,), (3, 3)])``
    maps ``R^6`` (1 + 2 + 3) to ``R^12`` (1 + 2 + 9). :meth:`split_outputs`
    turns a flat output back into the list of block-shaped values.

    Attributes:
      in_shapes, out_shapes: the event shape of each block's input / output.
      in_sizes, out_sizes: their sizes; in_offsets, out_offsets: the start of
        each block in the flat input / output (one more entry: the total).

    Raises:
      TypeError: ``bijectors`` is not a list/tuple of bijectors.
      ValueError: neither or both of ``sizes`` and ``out_shapes``, a wrong
        number of entries, or a shape that does not fit its bijector.
    """

    bijectors: tuple
    in_shapes: tuple = static()
    out_shapes: tuple = static()

    event_ndims_in = 1
    event_ndims_out = 1

    def __init__(self, bijectors, sizes=None, *, out_shapes=None):
        bijectors = _check_bijectors("Block", bijectors)
        ins, outs = _block_shapes(bijectors, sizes, out_shapes)
        self._setup(bijectors=bijectors, in_shapes=ins, out_shapes=outs)

    # ------------------------------------------------------------------ layout
    @property
    def in_sizes(self) -> tuple[int, ...]:
        return tuple(math.prod(s) for s in self.in_shapes)

    @property
    def out_sizes(self) -> tuple[int, ...]:
        return tuple(math.prod(s) for s in self.out_shapes)

    @property
    def in_offsets(self) -> tuple[int, ...]:
        return _offsets(self.in_shapes)

    @property
    def out_offsets(self) -> tuple[int, ...]:
        return _offsets(self.out_shapes)

    @property
    def in_size(self) -> int:
        """Length of the flat input vector."""
        return self.in_offsets[-1]

    @property
    def out_size(self) -> int:
        """Length of the flat output vector."""
        return self.out_offsets[-1]

    @property
    def is_constant_jacobian(self) -> bool:
        return all(b.is_constant_jacobian for b in self.bijectors)

    def forward_event_shape(self, shape):
        return self._flat_shape(shape, self.in_size, self.out_size, "input")

    def inverse_event_shape(self, shape):
        return self._flat_shape(shape, self.out_size, self.in_size, "output")

    def _flat_shape(self, shape, size, other, what):
        shape = tuple(shape)
        if len(shape) < 1 or shape[-1] != size:
            raise ValueError(
                f"Block: the {what} event shape must be ({size},) (the sum of the block {what} "
                f"sizes); got {shape}"
            )
        return shape[:-1] + (other,)

    # ------------------------------------------------------------------ split / join
    def _split(self, v, shapes, offsets, what):
        v = jnp.asarray(v)
        self._check_event(v, 1, what, (offsets[-1],))
        batch = v.shape[:-1]
        return [
            jnp.reshape(v[..., lo:hi], batch + s)
            for s, lo, hi in zip(shapes, offsets[:-1], offsets[1:])
        ]

    def _join(self, parts, shapes, what):
        if not isinstance(parts, (list, tuple)) or len(parts) != len(shapes):
            raise ValueError(
                f"Block: {what} must be a list of {len(shapes)} arrays (one per block); "
                f"got {type(parts).__name__} of length {len(parts) if hasattr(parts, '__len__') else '?'}"
            )
        flat = []
        for i, (p, s) in enumerate(zip(parts, shapes)):
            p = jnp.asarray(p)
            if tuple(p.shape[p.ndim - len(s):]) != s or p.ndim < len(s):
                raise ValueError(
                    f"Block: {what}[{i}] must end in the block's event shape {s}; got shape "
                    f"{tuple(p.shape)}"
                )
            flat.append(jnp.reshape(p, p.shape[: p.ndim - len(s)] + (math.prod(s),)))
        batch = jnp.broadcast_shapes(*(f.shape[:-1] for f in flat)) if flat else ()
        flat = [jnp.broadcast_to(f, batch + f.shape[-1:]) for f in flat]
        return jnp.concatenate(flat, axis=-1) if flat else jnp.zeros(batch + (0,))

    def split_inputs(self, x) -> list:
        """A flat input ``(..., in_size)`` as the list of block inputs ``(..., *in_shapes[i])``."""
        return self._split(x, self.in_shapes, self.in_offsets, "x")

    def split_outputs(self, y) -> list:
        """A flat output ``(..., out_size)`` as the list of block outputs ``(..., *out_shapes[i])``."""
        return self._split(y, self.out_shapes, self.out_offsets, "y")

    def join_inputs(self, parts):
        """The inverse of :meth:`split_inputs` (leading axes broadcast)."""
        return self._join(parts, self.in_shapes, "parts")

    def join_outputs(self, parts):
        """The inverse of :meth:`split_outputs` (leading axes broadcast)."""
        return self._join(parts, self.out_shapes, "parts")

    # ------------------------------------------------------------------ maps
    def _apply(self, v, forward: bool):
        src, dst = (self.in_shapes, self.out_shapes) if forward else (self.out_shapes, self.in_shapes)
        parts = self.split_inputs(v) if forward else self.split_outputs(v)
        outs, total = [], jnp.zeros(jnp.shape(v)[:-1], jnp.result_type(v))
        for b, p, s in zip(self.bijectors, parts, src):
            nd = b.event_ndims_in if forward else b.event_ndims_out
            out, ld = b.forward_and_log_det(p) if forward else b.inverse_and_log_det(p)
            outs.append(out)
            total = total + _summed(ld, jnp.shape(p), nd, len(s) - nd)
        return self._join(outs, dst, "the block values"), total

    def forward_and_log_det(self, x):
        return self._apply(x, True)

    def inverse_and_log_det(self, y):
        return self._apply(y, False)

    def __repr__(self):
        inner = ", ".join(repr(b) for b in self.bijectors)
        return f"Block([{inner}], out_shapes={list(self.out_shapes)})"
