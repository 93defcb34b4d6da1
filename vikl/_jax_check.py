"""A warning for the one jaxlib release known to give vikl wrong numbers.

jaxlib 0.10.2 on CPU rewrites ``sum(a * broadcast(b))`` into a dot product that
YNNPACK computes wrongly once the output exceeds 32,768 elements (16,384 in
float64): jax-ml/jax#39103. There is no error, only a wrong result; in vikl the
Beta, Gamma, Gumbel and low-rank Gaussian KLs and the Beta and Dirichlet entropies
of large batches were affected (6% off for one Beta pair tiled 14,641 times). ``pyproject.toml`` excludes the release, so a
fresh install never gets it; this warning is for an environment that already has
it. Disabling the YNN fusions (``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=``,
in the environment before Python starts) avoids the fault and silences the warning.
"""

from __future__ import annotations

import os
import warnings

_BAD_JAXLIB = {"0.10.2"}
_FLAG = "--xla_cpu_experimental_ynn_fusion_type"


def check_jaxlib(version: str, xla_flags: str) -> str | None:
    """The warning text for this jaxlib ``version`` and ``XLA_FLAGS`` value, or None."""
    if version not in _BAD_JAXLIB or _FLAG in xla_flags:
        return None
    return (
        f"jaxlib {version} miscompiles some reductions on CPU and returns wrong values "
        "for large batches (jax-ml/jax#39103); vikl's Beta, Gamma, Gumbel and "
        "low-rank Gaussian KLs are affected. Install another release (pip install 'jaxlib!=0.10.2' 'jax!=0.10.2'), "
        f"or start Python with XLA_FLAGS={_FLAG}= in the environment."
    )


def warn_if_bad_jaxlib() -> None:
    try:
        import jaxlib
    except ImportError:  # pragma: no cover - jax always brings jaxlib
        return
    message = check_jaxlib(getattr(jaxlib, "__version__", ""), os.environ.get("XLA_FLAGS", ""))
    if message is not None:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
