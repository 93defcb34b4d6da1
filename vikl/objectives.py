"""Variational objectives: losses that :func:`vikl.fit` minimizes.

An objective is any function ``objective(q, target, key) -> loss`` (a scalar,
or ``(loss, aux)`` with ``aux`` a dict of scalars recorded per step). Its
value is a Monte-Carlo estimate of the objective in nats and its gradient
with respect to ``q``'s parameters an estimate of the objective's gradient.
The classes below are frozen dataclasses (hashable, so ``fit`` compiles once
per distinct objective); calling one returns the loss.

Targets are touched only through ``log_prob`` and ``sample``:

* a :class:`vikl.Distribution`, a NumPyro distribution or any object with
  ``log_prob(x)`` (and ``sample(key, sample_shape)`` where needed);
* a plain callable ``log_density(x)`` for ONE point ``x`` of shape
  ``q.batch_shape + q.event_shape`` returning a scalar; it may be
  unnormalized (it is vmapped over the samples);
* :class:`vikl.Empirical` data (forward KL only).

Batch dimensions of ``q`` are independent coordinates of one point: log
densities are summed over every axis after the sample axis. To fit many
problems at once, pass lists or a batch of keys to ``fit``.

Summary (``w = p(x)/q(x)``, ``x ~ q`` unless said otherwise; ``p`` may be unnormalized):

* ``ReverseKL`` -- ``E_q[log q - log p]`` (negative ELBO); gradients:
  reparameterization (default), sticking-the-landing, score function.
* ``ForwardKL`` -- ``E_p[log p - log q]`` from target samples, Empirical data
  (cross-entropy) or self-normalized importance sampling (biased).
* ``Renyi(alpha)`` -- the variational Rényi bound ``(1/(1-a)) log E_q w^(1-a)``,
  maximized for ``a >= 0``, minimized (CHIVI-style) for ``a < 0``.
* ``IWAE(K)`` -- ``log mean_K w``, maximized; reparameterized or DReG gradient.
* ``ChiSquare(n)`` -- CHIVI's upper bound ``(1/n) log E_q w^n``, minimized.

Draws (``draws=``, every objective that draws from ``q``): ``"mc"`` (default)
takes i.i.d. base normals; ``"rqmc"`` takes them from a scrambled Sobol set
(randomized quasi-Monte Carlo, Buchholz et al. 2018; :mod:`vikl._qmc`), which
keeps the estimates unbiased and lowers the variance of the loss and its
gradient for smooth targets, most at ``num_samples`` a power of two. RQMC
needs a family that draws from standard normals (Normal,
MultivariateNormalDiag, MultivariateNormal, LowRankMultivariateNormal, the
flows); with ``"rqmc"`` any other ``q`` raises ``ValueError``, with ``"auto"``
it is drawn by plain Monte Carlo.

A user objective is a plain function::

    def entropy_regularized(q, target, key):
        x = q.sample(key, (32,))
        return jnp.mean(q.log_prob(x) - target.log_prob(x)) - 0.1 * q.entropy()

    vikl.fit(q0, target, objective=entropy_regularized, num_steps=1000, key=key)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Optional

import jax
import jax.numpy as jnp

from vikl import _objective_terms as T
from vikl import _qmc, _targets
from vikl._validate import check_int

__all__ = [
    "Objective",
    "ReverseKL",
    "ForwardKL",
    "Renyi",
    "IWAE",
    "ChiSquare",
    "get",
]

DEFAULT_NUM_SAMPLES = 16


# ----------------------------------------------------------------------------- base
class Objective:
    """Base class of the built-in objectives (frozen dataclasses).

    ``objective(q, target, key)`` returns the loss; ``loss_and_aux`` also
    returns a dict of per-step diagnostics that ``fit`` records in
    ``FitResult.trace``.
    """

    num_samples: Optional[int]

    def __call__(self, q, target, key):
        return self.loss_and_aux(q, target, key)[0]

    def loss_and_aux(self, q, target, key):  # pragma: no cover - abstract
        raise NotImplementedError

    def replace(self, **changes):
        """A copy with some fields changed (e.g. ``num_samples``)."""
        return dataclasses.replace(self, **changes)

    def _check_num_samples(self, minimum=1):
        if self.num_samples is not None:
            n = check_int("num_samples", self.num_samples, minimum, where=type(self).__name__)
            object.__setattr__(self, "num_samples", n)
        if hasattr(self, "draws"):
            _qmc.check_draws(self.draws, type(self).__name__)


# ----------------------------------------------------------------------------- reverse KL
@dataclasses.dataclass(frozen=True)
class ReverseKL(Objective):
    """Reverse KL up to the target's normalizer: the negative ELBO.

    ``loss = E_q[log q(X) - log p(X)] = KL(q‖p) - log Z``, in nats (``p`` may be
    unnormalized with normalizer ``Z``; the loss is then ``-ELBO``). Minimizing
    it is mode-seeking.

    Args:
      num_samples: draws from ``q`` per step.
      gradient: the gradient estimator.

        * ``"reparam"`` -- pathwise (reparameterization) gradient; with
          ``q``'s analytic entropy when it has one:
          ``loss = -mean log p(x_i) - H(q)``.
        * ``"stl"`` -- sticking the landing (Roeder et al. 2017): the score
          term is dropped by evaluating ``log q`` with stopped parameters;
          zero variance once ``q = p``.
        * ``"score"`` -- score-function (REINFORCE) estimator with a
          leave-one-out baseline, for families that cannot be
          reparameterized (Categorical, Bernoulli, Poisson):
          ``grad ≈ mean_i (f_i - b_i) grad log q(x_i)``,
          ``b_i = mean_{j≠i} f_j``; unbiased. With an analytic entropy
          ``f = -log p`` and ``-H(q)`` is differentiated exactly.
        * ``None`` (default) -- ``"reparam"`` when ``q.reparameterized``
          (for a Mixture: when its components are), else ``"score"``.

        For a :class:`vikl.Mixture` ``q`` with reparameterized components,
        ``"reparam"`` and ``"stl"`` use per-component stratified sampling,
        ``E_q f = sum_k w_k E_{q_k} f``, with ``num_samples`` draws from each
        component, so the gradient reaches the mixture weights.
      analytic_entropy: use ``q.entropy()`` when available (``"reparam"`` and
        ``"score"``); ``False`` forces the Monte-Carlo ``-mean log q``.
      draws: ``"mc"`` (i.i.d. base normals, default), ``"rqmc"`` (scrambled
        Sobol base normals; see the module docstring; not for Mixture ``q``) or
        ``"auto"`` (``"rqmc"`` where ``q`` supports it, else ``"mc"``).

    References:
      Roeder, Wu, Duvenaud (2017). Sticking the landing: simple, lower-variance
      gradient estimators for variational inference.
      Buchholz, Wenzel, Mandt (2018). Quasi-Monte Carlo variational inference. ICML.
    """

    num_samples: int = DEFAULT_NUM_SAMPLES
    gradient: Optional[str] = None
    analytic_entropy: bool = True
    draws: str = "mc"

    def __post_init__(self):
        self._check_num_samples()
        if self.gradient not in (None, *T.REVERSE_KL_GRADIENTS):
            raise ValueError(
                f"ReverseKL: gradient must be one of {sorted(T.REVERSE_KL_GRADIENTS)} or None; "
                f"got {self.gradient!r}"
            )

    def loss_and_aux(self, q, target, key):
        if hasattr(target, "reverse_kl_loss"):  # a vikl.Posterior: minibatch + prior KL
            return target.reverse_kl_loss(self, q, key)
        n = self.num_samples
        strata = q.strata() if hasattr(q, "strata") else None
        gradient = self.gradient or (
            "reparam" if T.is_reparameterized(q if strata is None else strata[1]) else "score")
        if strata is not None and gradient != "score":
            if self.draws == "rqmc":
                raise ValueError(
                    f"ReverseKL(draws={self.draws!r}) does not support a {type(q).__name__} q "
                    "(stratified per-component draws); use draws='mc'")
            return T.stratified_kl(q, strata, target, key, n, stl=gradient == "stl"), {}
        if gradient != "score" and not T.is_reparameterized(q):
            raise ValueError(
                f"ReverseKL(gradient={gradient!r}) needs a reparameterized q; "
                f"{type(q).__name__} is not (its samples are not differentiable). "
                "Use gradient='score'."
            )
        use_entropy = self.analytic_entropy and gradient != "stl"
        entropy = T.entropy_or_none(q) if use_entropy else None
        if self.draws == "mc":  # the call of before the draws option: results unchanged
            return T.REVERSE_KL_GRADIENTS[gradient](q, target, key, n, entropy), {}
        return T.REVERSE_KL_GRADIENTS[gradient](q, target, key, n, entropy, draws=self.draws), {}


# ----------------------------------------------------------------------------- forward KL
@dataclasses.dataclass(frozen=True)
class ForwardKL(Objective):
    """Forward KL ``KL(p‖q) = E_p[log p(X) - log q(X)]`` (mass-covering), in nats.

    Three estimators, picked from the target (``method="auto"``):

    * ``"data"`` -- an :class:`vikl.Empirical` target: the cross-entropy
      ``-mean_i log q(x_i)`` over the data (maximum likelihood). With
      ``batch_size=None`` every step uses all the data (deterministic); with
      ``batch_size=B`` each step uses ``B`` points drawn uniformly with
      replacement (an unbiased minibatch). The loss is the cross-entropy, not
      the KL (the data's entropy is unknown).
    * ``"samples"`` -- a target with ``sample``: ``x_i ~ p`` (``num_samples``
      per step); the loss is ``mean_i [log p(x_i) - log q(x_i)]`` when the
      target has ``log_prob``, else the cross-entropy ``-mean_i log q(x_i)``.
    * ``"snis"`` -- a log-density-only target: self-normalized importance
      sampling with ``q`` as proposal, ``x_i ~ q``, ``w_i ∝ p̃(x_i)/q(x_i)``
      normalized to sum to one; gradient ``-sum_i w_i grad log q(x_i)`` and loss
      ``sum_i w_i log(p̃(x_i)/q(x_i)) - log Ẑ`` with ``Ẑ = mean_i p̃(x_i)/q(x_i)``.
      BIASED (consistent as ``num_samples`` grows) and unreliable while ``q``
      misses mass of ``p``; the effective sample size
      ``(sum w)^2 / sum w^2`` of each step is recorded as ``trace["ess"]``.
      With ``gradient="dreg"`` (reparameterized ``q``) the gradient is the
      doubly reparameterized form of Tucker et al. (2019) for the reweighted
      wake-sleep wake update, ``-sum_i (w_i - w_i^2) d log w_i/dx_i dx_i``:
      the same expectation as the score form, usually a lower variance.

    Args:
      num_samples: draws per step (target samples, or proposals for SNIS).
      batch_size: minibatch size for Empirical data; ``None`` = all data.
      method: ``"auto"``, ``"data"``, ``"samples"`` or ``"snis"``.
      draws: ``"mc"``, ``"rqmc"`` or ``"auto"`` (see the module docstring): the draws of
        ``q`` for ``"snis"``, of the target for ``"samples"`` (the target must
        then be one of the RQMC families).
      gradient: ``"score"`` (default) or ``"dreg"`` (``"snis"`` only).

    References:
      Tucker, Lawson, Gu, Maddison (2019). Doubly reparameterized gradient
      estimators for Monte Carlo objectives. ICLR.
    """

    num_samples: int = DEFAULT_NUM_SAMPLES
    batch_size: Optional[int] = None
    method: str = "auto"
    draws: str = "mc"
    gradient: str = "score"

    def __post_init__(self):
        self._check_num_samples()
        if self.method not in ("auto", "data", "samples", "snis"):
            raise ValueError(
                f"ForwardKL: method must be 'auto', 'data', 'samples' or 'snis'; got {self.method!r}"
            )
        if self.batch_size is not None:
            object.__setattr__(self, "batch_size", check_int("batch_size", self.batch_size, where="ForwardKL"))
        if self.gradient not in ("score", "dreg"):
            raise ValueError(f"ForwardKL: gradient must be 'score' or 'dreg'; got {self.gradient!r}")
        if self.gradient == "dreg" and self.method not in ("auto", "snis"):
            raise ValueError(
                f"ForwardKL: gradient='dreg' applies to method='snis' only; got method={self.method!r}")

    def _method(self, target):
        if self.method != "auto":
            return self.method
        if _targets.data(target) is not None:
            return "data"
        return "samples" if _targets.can_sample(target) else "snis"

    def loss_and_aux(self, q, target, key):
        method = self._method(target)
        if self.draws == "mc" and self.gradient == "score":  # as before these options
            return T.FORWARD_KL_METHODS[method](q, target, key, self.num_samples, self.batch_size)
        if method != "snis" and self.gradient == "dreg":
            raise ValueError(
                f"ForwardKL(gradient='dreg') applies to the 'snis' method; this target uses {method!r}")
        if method == "snis" and self.gradient == "dreg":
            _require_reparam(self, q)
            return T.FORWARD_KL_METHODS["snis"](
                q, target, key, self.num_samples, self.batch_size, draws=self.draws, dreg=True)
        return T.FORWARD_KL_METHODS[method](
            q, target, key, self.num_samples, self.batch_size, draws=self.draws)


# ----------------------------------------------------------------------------- Rényi family
@dataclasses.dataclass(frozen=True)
class Renyi(Objective):
    """Variational Rényi bound (Li & Turner 2016), in nats.

    ``L_a(q) = (1/(1-a)) log E_q[(p(X)/q(X))^(1-a)] = log Z - D_a(q‖p/Z)``, estimated
    by one log-mean-exp over ``num_samples`` reparameterized draws (biased
    downward for finite ``num_samples``; the bias shrinks like ``1/num_samples``).
    Its optimum moves from mode-seeking to mass-covering as ``alpha`` falls:

    * ``alpha = 1``: the ELBO, computed exactly as ``mean log w`` (reverse KL).
    * ``alpha >= 0`` (``alpha != 1``): ``L_a <= log Z``, maximized
      (``loss = -L_a``); ``alpha = 0`` is the importance-weighted (IWAE) bound
      with ``num_samples`` particles.
    * ``alpha < 0``: ``L_a >= log Z``, an upper bound, minimized
      (``loss = +L_a``), as CHIVI does (``alpha = 1 - n`` is ``CUBO_n``, see
      :class:`ChiSquare`): the exact optimum minimizes the forward Rényi
      divergence ``D_(1-a)(p‖q)``, mass-covering. The gradient is CHIVI's
      unbiased gradient of ``E_q[w^(1-a)]``, scaled by ``exp(-(1-a) c)`` with
      ``c = log_normalizer``; see :class:`ChiSquare` for the caveats.

    Args:
      alpha: the Rényi order (a Python float).
      num_samples: draws per step (all in one bound).
      log_normalizer: ``c`` above, used only for ``alpha < 0``.
      draws: ``"mc"``, ``"rqmc"`` or ``"auto"`` (see the module docstring).
      gradient: ``"reparam"`` (default) or ``"dreg"`` (``alpha >= 0``): the
        doubly reparameterized gradient (Tucker et al. 2019) with ``v =
        softmax((1 - a) log w)``, ``grad L_a ≈ sum_k (a v_k + (1 - a) v_k^2)
        d log w_k/dx_k dx_k`` (``log q`` at stopped parameters): the same
        expectation as the reparameterized gradient, IWAE's DReG at
        ``alpha = 0`` and sticking the landing at ``alpha = 1``.

    References:
      Li & Turner (2016). Rényi divergence variational inference. NeurIPS.
      Tucker, Lawson, Gu, Maddison (2019). Doubly reparameterized gradient
      estimators for Monte Carlo objectives. ICLR.
    """

    alpha: float = 0.5
    num_samples: int = DEFAULT_NUM_SAMPLES
    log_normalizer: float = 0.0
    draws: str = "mc"
    gradient: str = "reparam"

    def __post_init__(self):
        self._check_num_samples()
        if not isinstance(self.alpha, numbers.Real) or not math.isfinite(self.alpha):
            raise ValueError(f"Renyi: alpha must be a finite Python float; got {self.alpha!r}")
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "log_normalizer", float(self.log_normalizer))
        if self.gradient not in ("reparam", "dreg"):
            raise ValueError(f"Renyi: gradient must be 'reparam' or 'dreg'; got {self.gradient!r}")
        if self.gradient == "dreg" and self.alpha < 0:
            raise ValueError(
                f"Renyi: gradient='dreg' needs alpha >= 0 (the lower bounds); got alpha={self.alpha}")

    def loss_and_aux(self, q, target, key):
        _require_reparam(self, q)
        dreg = self.gradient == "dreg"
        logw = T.log_weights(q, target, key, self.num_samples, stop_q=dreg, draws=self.draws)
        if self.alpha < 0:
            return T.upper_bound_loss(logw, 1.0 - self.alpha, self.log_normalizer), {}
        if dreg:
            return T.lower_bound_dreg(logw, self.alpha), {}
        return T.lower_bound_loss(logw, self.alpha), {}


@dataclasses.dataclass(frozen=True)
class IWAE(Objective):
    """Importance-weighted bound (Burda et al. 2016): ``log mean_{k<=K} p(x_k)/q(x_k)``.

    ``loss = -mean_g [log (1/K) sum_k w_gk]`` over ``num_samples / K`` groups of
    ``K = num_particles`` draws; a lower bound on ``log Z`` that tightens as
    ``K`` grows (``K = 1`` is the ELBO), in nats.

    Args:
      num_particles: ``K``, draws inside one bound.
      num_samples: total draws per step, a multiple of ``num_particles``
        (default: ``num_particles``, one bound).
      gradient: ``"reparam"`` (default) or ``"dreg"``, the doubly
        reparameterized gradient (Tucker et al. 2018): ``log q`` with stopped
        parameters and squared normalized weights; lower variance for large K.
      draws: ``"mc"``, ``"rqmc"`` or ``"auto"`` (see the module docstring; all
        ``num_samples`` draws are one scrambled set).
    """

    num_particles: int = DEFAULT_NUM_SAMPLES
    num_samples: Optional[int] = None
    gradient: str = "reparam"
    draws: str = "mc"

    def __post_init__(self):
        self._check_num_samples()
        k = check_int("num_particles", self.num_particles, where="IWAE")
        object.__setattr__(self, "num_particles", k)
        if self.num_samples is not None and self.num_samples % k:
            raise ValueError(
                f"IWAE: num_samples ({self.num_samples}) must be a multiple of num_particles ({k})"
            )
        if self.gradient not in ("reparam", "dreg"):
            raise ValueError(f"IWAE: gradient must be 'reparam' or 'dreg'; got {self.gradient!r}")

    def loss_and_aux(self, q, target, key):
        _require_reparam(self, q)
        k = self.num_particles
        n = self.num_samples or k
        dreg = self.gradient == "dreg"
        logw = T.log_weights(q, target, key, n, stop_q=dreg, draws=self.draws).reshape(n // k, k)
        bound = jnp.mean(T.log_mean_exp(logw, axis=-1))
        if not dreg:
            return -bound, {}
        w = T.sg(jax.nn.softmax(logw, axis=-1))
        surrogate = jnp.sum(w * w * logw) / (n // k)
        return T.with_gradient(-bound, -surrogate), {}


@dataclasses.dataclass(frozen=True)
class ChiSquare(Objective):
    """CHIVI's chi upper bound (Dieng et al. 2017), minimized, in nats.

    ``CUBO_n(q) = (1/n) log E_q[(p(X)/q(X))^n] >= log Z``; minimizing it minimizes
    ``D_chi^n(p‖q)`` (``n = 2``: the chi-square divergence), a mass-covering
    fit. Equivalent to ``Renyi(alpha=1 - n)``. The loss is the log-mean-exp
    estimate of ``CUBO_n`` over ``num_samples`` reparameterized draws; the
    gradient is the unbiased Monte-Carlo gradient of ``E_q[w^n]`` (CHIVI's
    algorithm) times the constant ``exp(-n c) / n``, ``c = log_normalizer``.

    Caveats: ``E_q[w^n]`` is finite only when ``q``'s tails are heavy enough
    (for Gaussians: ``n Sigma_p^-1 - (n-1) Sigma_q^-1`` positive definite), so
    start from a wide ``q0``. For an unnormalized target pass an estimate of
    ``log Z`` as ``log_normalizer`` (e.g. minus the final loss of a reverse-KL
    fit): ``exp(n (log w - c))`` overflows float32 above ``exp(88)``, which
    stops ``fit`` with a divergence error.

    Args:
      n: the order, > 1.
      num_samples: draws per step.
      log_normalizer: ``c`` above (0 suits normalized targets).
      draws: ``"mc"``, ``"rqmc"`` or ``"auto"`` (see the module docstring).
    """

    n: float = 2.0
    num_samples: int = DEFAULT_NUM_SAMPLES
    log_normalizer: float = 0.0
    draws: str = "mc"

    def __post_init__(self):
        self._check_num_samples()
        if not isinstance(self.n, numbers.Real) or not self.n > 1:
            raise ValueError(f"ChiSquare: n must be a Python number > 1; got {self.n!r}")
        object.__setattr__(self, "n", float(self.n))
        object.__setattr__(self, "log_normalizer", float(self.log_normalizer))

    def loss_and_aux(self, q, target, key):
        _require_reparam(self, q)
        logw = T.log_weights(q, target, key, self.num_samples, draws=self.draws)
        return T.upper_bound_loss(logw, self.n, self.log_normalizer), {}


def _require_reparam(obj, q):
    if not T.is_reparameterized(q):
        raise ValueError(
            f"{type(obj).__name__} uses reparameterized gradients; {type(q).__name__} is not "
            "reparameterized. Use ReverseKL(gradient='score') for discrete families."
        )


# ----------------------------------------------------------------------------- lookup
_NAMES = {
    "reverse_kl": ReverseKL,
    "elbo": ReverseKL,
    "forward_kl": ForwardKL,
    "renyi": Renyi,
    "iwae": IWAE,
    "chi_square": ChiSquare,
    "chivi": ChiSquare,
}


def get(objective, num_samples: Optional[int] = None):
    """Resolves ``objective`` (a name, an Objective or a callable) for :func:`vikl.fit`.

    Args:
      objective: ``"reverse_kl"`` (alias ``"elbo"``), ``"forward_kl"``,
        ``"renyi"`` (alpha 0.5), ``"iwae"``, ``"chi_square"`` (alias
        ``"chivi"``); an :class:`Objective`; or a plain function
        ``(q, target, key) -> loss | (loss, aux)``.
      num_samples: overrides the objective's ``num_samples`` (names and
        Objective instances only).

    Returns:
      A callable objective.

    Raises:
      ValueError: unknown name, or ``num_samples`` given with a plain function.
    """
    if isinstance(objective, str):
        cls = _NAMES.get(objective.lower())
        if cls is None:
            raise ValueError(
                f"unknown objective {objective!r}; expected one of {sorted(_NAMES)}, an "
                "Objective instance, or a function (q, target, key) -> loss"
            )
        return cls() if num_samples is None else cls(num_samples=num_samples)
    if isinstance(objective, Objective):
        if num_samples is not None and num_samples != objective.num_samples:
            return objective.replace(num_samples=num_samples)
        return objective
    if callable(objective):
        if num_samples is not None:
            raise ValueError(
                "num_samples was given, but the objective is a plain function, which draws "
                "its own samples; drop num_samples or pass an Objective"
            )
        return objective
    raise TypeError(
        f"objective must be a name, an Objective or a callable; got {type(objective).__name__}"
    )
