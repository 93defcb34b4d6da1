"""vikl: KL divergences, information measures and variational fitting in JAX.

Public surface. Distributions (``vikl.Normal``, ``vikl.MultivariateNormal``, ...),
information measures (``kl_divergence``, ``entropy``, ``cross_entropy``,
``jensen_shannon``, ``mutual_information``, ``conditional_entropy``), the
Monte-Carlo estimator ``estimate_kl``, the variational fitting loop ``fit`` and
its pure pieces ``fit_init``/``fit_step``.
"""

from vikl import _constraints as constraints
from vikl import _info, bijectors, families, objectives
from vikl._base import Distribution, param, static, validation
from vikl._convergence import Convergence
from vikl._distributions import *  # noqa: F401,F403
from vikl._distributions import __dict__ as _families_ns
from vikl._estimators import Estimate, EstimateWarning, estimate_kl
from vikl._fit import FitDivergedError, FitInterrupted, FitResult, fit
from vikl._fit_result import FitWarning
from vikl._info import *  # noqa: F401,F403
from vikl._init import InitializationError, InitializationWarning, find_mode, laplace, pathfinder
from vikl._jax_check import warn_if_bad_jaxlib as _warn_if_bad_jaxlib
from vikl._kl import kl_divergence, register_kl, registered_kl_pairs
from vikl._loop import FitState, fit_init, fit_step
from vikl._numpyro_model import NumPyroLayout, NumPyroModel, to_arviz
from vikl._optimizers import clip_gradient_spikes, preconditioned_adam
from vikl._posterior import Posterior
from vikl._unconstrained import unconstrained

# Importing the modules above compiles nothing; warn before the first computation.
_warn_if_bad_jaxlib()

__version__ = "0.1.0"

_FAMILY_NAMES = sorted(
    name
    for name, obj in _families_ns.items()
    if isinstance(obj, type) and issubclass(obj, Distribution) and obj is not Distribution
)

__all__ = [
    "Distribution",
    "constraints",
    "param",
    "static",
    "validation",
    "kl_divergence",
    "register_kl",
    "registered_kl_pairs",
    "estimate_kl",
    "Estimate",
    "EstimateWarning",
    "fit",
    "FitResult",
    "FitDivergedError",
    "FitInterrupted",
    "FitWarning",
    "Convergence",
    "find_mode",
    "laplace",
    "pathfinder",
    "preconditioned_adam",
    "clip_gradient_spikes",
    "InitializationError",
    "InitializationWarning",
    "FitState",
    "fit_init",
    "fit_step",
    "unconstrained",
    "NumPyroModel",
    "NumPyroLayout",
    "to_arviz",
    "Posterior",
    "objectives",
    "families",
    "bijectors",
    *_FAMILY_NAMES,
    *_info.__all__,
]
