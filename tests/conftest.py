"""Shared fixtures and tolerances.

* Strict dtype promotion (as equinox's suite does): mixing float32 and
  float64 arrays, or ints and floats, raises instead of silently promoting.
* ``dtype`` fixture: runs a test once in float32 and once in float64 (with
  ``jax.enable_x64``); use ``tol(dtype)`` for the matching tolerance.
* ``key`` fixture: a fixed PRNG key; split it, never reuse it.
"""

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")

# Relative tolerances for closed forms against float64 references.
RTOL = {np.dtype("float32"): 2e-5, np.dtype("float64"): 1e-11}


def tol(dtype):
    """Relative tolerance for a closed-form value computed in ``dtype``."""
    return RTOL[np.dtype(dtype)]


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """Runs the test in float32 and, with jax_enable_x64 on, in float64."""
    if request.param == "float64":
        with jax.enable_x64(True):
            yield np.dtype("float64")
    else:
        yield np.dtype("float32")


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


def mc_tolerance(stderr, sigmas=5.0):
    """Monte-Carlo tolerance: ``sigmas`` standard errors (fixed seeds make it deterministic)."""
    return sigmas * np.asarray(stderr, np.float64)
