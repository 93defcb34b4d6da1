"""Bijectors: invertible maps with log-Jacobians, the layer under constrained fitting.

``vikl.bijectors.X`` are immutable pytrees with ``forward``, ``inverse``,
``forward_log_det_jacobian``, ``inverse_log_det_jacobian`` and the one-pass
``forward_and_log_det`` / ``inverse_and_log_det``; see :class:`Bijector`.
"""

from vikl.bijectors._bijector import *  # noqa: F403
from vikl.bijectors._combinators import *  # noqa: F403
from vikl.bijectors._elementwise import *  # noqa: F403
from vikl.bijectors._flows import *  # noqa: F403
from vikl.bijectors._registry import *  # noqa: F403
from vikl.bijectors._structured import *  # noqa: F403
