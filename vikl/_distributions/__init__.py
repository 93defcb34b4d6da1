"""The distribution families. One family (or a close group) per module."""

# Each module defines ``__all__``; importing it also registers its KL pairs.
from vikl._distributions.normal import *  # noqa: F401,F403
from vikl._distributions.mvn import *  # noqa: F401,F403
from vikl._distributions.dirichlet import *  # noqa: F401,F403
from vikl._distributions.laplace import *  # noqa: F401,F403
from vikl._distributions.studentt import *  # noqa: F401,F403
from vikl._distributions.cauchy import *  # noqa: F401,F403
from vikl._distributions.exponential import *  # noqa: F401,F403
from vikl._distributions.gamma import *  # noqa: F401,F403
from vikl._distributions.beta import *  # noqa: F401,F403
from vikl._distributions.uniform import *  # noqa: F401,F403
from vikl._distributions.lognormal import *  # noqa: F401,F403
from vikl._distributions.halfnormal import *  # noqa: F401,F403
from vikl._distributions.gumbel import *  # noqa: F401,F403
from vikl._distributions.categorical import *  # noqa: F401,F403
from vikl._distributions.bernoulli import *  # noqa: F401,F403
from vikl._distributions.poisson import *  # noqa: F401,F403
from vikl._distributions.binomial import *  # noqa: F401,F403
from vikl._distributions.geometric import *  # noqa: F401,F403
from vikl._distributions.mixture import *  # noqa: F401,F403
from vikl._distributions.empirical import *  # noqa: F401,F403
from vikl._distributions.flows import *  # noqa: F401,F403
# Cross-family KL pairs that belong to no single family (registered on import).
from vikl._distributions import _cross_kl_continuous  # noqa: F401,E402
from vikl._distributions import _cross_kl_discrete  # noqa: F401,E402
