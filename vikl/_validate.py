"""Shared validators for user-facing arguments.

One home for checks that several modules need, so every public function
accepts the same inputs and reports bad ones with the same message.

Usage::

    from vikl._validate import check_int

    num_steps = check_int("num_steps", num_steps)             # int >= 1
    num_diag = check_int("num_diagnostic_samples", n, 0)      # int >= 0
    k = check_int("num_particles", k, where="IWAE")           # "IWAE: num_particles ..."
"""

from __future__ import annotations

import numbers

import jax
import numpy as np

__all__ = ["ArgumentTypeError", "IntTypeError", "check_int"]


class ArgumentTypeError(TypeError, ValueError):
    """Raised when an argument has the wrong type.

    It is both a ``TypeError`` (the natural class for a wrong type) and a
    ``ValueError`` (what vikl raised for these inputs before), so code that
    catches either keeps working.
    """


class IntTypeError(ArgumentTypeError):
    """Raised when an integer argument has a non-integer type (see :class:`ArgumentTypeError`)."""


def _describe(value) -> str:
    """Short ``repr`` plus type for error messages."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} (type {type(value).__name__})"


def _as_python_int(name: str, value, prefix: str, minimum: int) -> int:
    """Return ``value`` as a Python int, or raise ``IntTypeError``."""
    expected = "a Python int, a NumPy integer or a 0-d integer array (not a bool or float)"
    what = f"{prefix}{name} must be an int >= {minimum}"
    if isinstance(value, (bool, np.bool_)):
        raise IntTypeError(f"{what}; got {_describe(value)}. "
                           f"Expected {expected}.")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, jax.core.Tracer):
        raise IntTypeError(
            f"{what}, known before tracing; got a traced "
            f"value {_describe(value)}. Pass it as a static argument (it sets a shape or a "
            "loop length)."
        )
    if isinstance(value, (np.ndarray, jax.Array)):
        dtype = np.dtype(value.dtype)
        if np.ndim(value) == 0 and np.issubdtype(dtype, np.integer):
            return int(value)
        raise IntTypeError(
            f"{what}; got an array of dtype {dtype} and "
            f"shape {tuple(np.shape(value))}. Expected {expected}."
        )
    if isinstance(value, numbers.Integral):  # other integer types (e.g. from a bigint lib)
        return int(value)
    raise IntTypeError(f"{what}; got {_describe(value)}. "
                       f"Expected {expected}.")


def check_int(name: str, value, minimum: int = 1, *, where: str | None = None) -> int:
    """Validate an integer argument and return it as a Python ``int``.

    Accepts Python ints, NumPy integer scalars (``np.int64(3)``) and 0-d
    integer NumPy/JAX arrays. Rejects bools (``True`` is not a count),
    floats (even integral ones such as ``3.0``), non-scalar arrays and traced
    values.

    Args:
        name: the argument's name, used in the message (e.g. ``"num_steps"``).
        value: the value to check.
        minimum: the smallest allowed value (inclusive).
        where: optional prefix naming the function, e.g. ``"fit"`` gives
            ``"fit: num_steps must be ..."``.

    Returns:
        ``value`` as a Python ``int``.

    Raises:
        IntTypeError: (a ``TypeError`` and a ``ValueError``) if ``value`` is
            not an integer.
        ValueError: if ``value < minimum``.

    Example:
        >>> check_int("num_steps", np.int64(3))
        3
        >>> check_int("num_steps", 0)
        Traceback (most recent call last):
        ...
        ValueError: num_steps must be an int >= 1; got 0
    """
    prefix = f"{where}: " if where else ""
    out = _as_python_int(name, value, prefix, minimum)
    if out < minimum:
        raise ValueError(f"{prefix}{name} must be an int >= {minimum}; got {out}")
    return out
