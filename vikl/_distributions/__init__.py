"""The distribution families. One family (or a close group) per module.

Each family module defines ``__all__``; importing it also registers its KL pairs. The KL
pairs kept apart from their families' modules are registered by importing those modules
here: ``mvn_kl`` (among the Gaussian families, and with ``Normal``) and
``_cross_kl_continuous`` / ``_cross_kl_discrete`` (between different families).
"""

from vikl._distributions import _cross_kl_continuous, _cross_kl_discrete, mvn_kl  # noqa: F401
from vikl._distributions.bernoulli import *  # noqa: F403
from vikl._distributions.beta import *  # noqa: F403
from vikl._distributions.binomial import *  # noqa: F403
from vikl._distributions.categorical import *  # noqa: F403
from vikl._distributions.cauchy import *  # noqa: F403
from vikl._distributions.dirichlet import *  # noqa: F403
from vikl._distributions.empirical import *  # noqa: F403
from vikl._distributions.exponential import *  # noqa: F403
from vikl._distributions.flows import *  # noqa: F403
from vikl._distributions.gamma import *  # noqa: F403
from vikl._distributions.geometric import *  # noqa: F403
from vikl._distributions.gumbel import *  # noqa: F403
from vikl._distributions.halfnormal import *  # noqa: F403
from vikl._distributions.laplace import *  # noqa: F403
from vikl._distributions.lognormal import *  # noqa: F403
from vikl._distributions.mixture import *  # noqa: F403
from vikl._distributions.mvn import *  # noqa: F403
from vikl._distributions.normal import *  # noqa: F403
from vikl._distributions.poisson import *  # noqa: F403
from vikl._distributions.studentt import *  # noqa: F403
from vikl._distributions.transformed import *  # noqa: F403
from vikl._distributions.uniform import *  # noqa: F403
