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

A user objective is a plain function::

    def entropy_regularized(q, target, key):
        x = q.sample(key, (32,))
        return jnp.mean(q.log_prob(x) - target.log_prob(x)) - 0.1 * q.entropy()

    vikl.fit(q0, target, objective=entropy_regularized, num_steps=1000, key=key)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import jax
import jax.numpy as jnp

from vikl._base import Distribution

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


# ----------------------------------------------------------------------------- targets
def _empirical_type():
    from vikl._distributions import empirical

    return getattr(empirical, "Empirical", None)


def _mixture_type():
    from vikl._distributions import mixture

    return getattr(mixture, "Mixture", None)


def is_empirical(target) -> bool:
    """True for :class:`vikl.Empirical` targets (data known only by samples)."""
    cls = _empirical_type()
    return cls is not None and isinstance(target, cls)


def _flat_sum(v, n):
    """Sums every axis after the first of ``v`` (shape ``(n, ...)``) -> ``(n,)``."""
    v = jnp.asarray(v)
    if v.ndim == 0 or v.shape[0] != n:
        raise ValueError(
            f"log_prob returned shape {tuple(v.shape)} for {n} samples; expected a leading "
            f"axis of length {n} (one value per sample)"
        )
    return v.reshape(n, -1).sum(axis=-1) if v.ndim > 1 else v


def target_log_prob(target, x):
    """``log p(x)`` for a batch ``x`` of shape ``(n,) + point_shape`` -> ``(n,)``."""
    n = x.shape[0]
    if hasattr(target, "log_prob"):
        if is_empirical(target):
            raise ValueError(
                "this objective needs the target's log density, but an Empirical target is known "
                "only by its samples; use objective='forward_kl' (maximum likelihood on the data)"
            )
        return _flat_sum(target.log_prob(x), n)
    if callable(target):
        lp = jax.vmap(target)(x)
        if lp.ndim != 1:
            raise ValueError(
                f"a log-density callable must return a scalar for one point of shape "
                f"{tuple(x.shape[1:])}; got shape {tuple(lp.shape[1:])}"
            )
        return lp
    raise TypeError(
        "target must be a Distribution, an object with log_prob/sample (e.g. a NumPyro "
        f"distribution) or a log-density callable; got {type(target).__name__}"
    )


def q_log_prob(q, x):
    """``log q(x)`` summed over ``q``'s batch axes -> ``(n,)``."""
    return _flat_sum(q.log_prob(x), x.shape[0])


def _entropy_or_none(q):
    try:
        h = q.entropy()
    except NotImplementedError:
        return None
    return jnp.sum(h)


def _is_reparameterized(q) -> bool:
    return bool(getattr(type(q), "reparameterized", True))


def _sg(tree):
    return jax.lax.stop_gradient(tree)


def _with_gradient(value, surrogate):
    """A scalar whose value is ``value`` and whose gradient is ``grad(surrogate)``."""
    return _sg(value) + (surrogate - _sg(surrogate))


def _log_mean_exp(a, axis=-1):
    n = a.shape[axis]
    return jax.scipy.special.logsumexp(a, axis=axis) - math.log(n)


def _check_point_shape(q, x, what):
    expect = tuple(q.batch_shape) + tuple(q.event_shape)
    if tuple(x.shape[1:]) != expect:
        raise ValueError(
            f"{what} have point shape {tuple(x.shape[1:])} but q's points have shape {expect} "
            "(q.batch_shape + q.event_shape); the target and q must live on the same space"
        )


def sample_and_log_prob(q, key, n, stop_q=False):
    """``n`` draws of q and ``log q`` at them, summed over q's batch axes -> ``(n,)``.

    Uses the family's ``sample_and_log_prob`` (log q from the noise, e.g. no
    triangular solve for a Gaussian). With ``stop_q`` the log density is taken
    with q's parameters held fixed, so its gradient reaches them only through the
    draws (sticking the landing).
    """
    if not isinstance(q, Distribution):  # e.g. a NumPyro distribution
        x = q.sample(key, (n,))
        return x, q_log_prob(_sg(q) if stop_q else q, x)
    method = q._sample_and_stopped_log_prob if stop_q else q.sample_and_log_prob
    x, logq = method(key, (n,))
    return x, _flat_sum(logq, n)


def _log_weights(q, target, key, num_samples, stop_q=False):
    """Reparameterized draws and ``log w = log p(x) - log q(x)``, shape ``(num_samples,)``."""
    x, logq = sample_and_log_prob(q, key, num_samples, stop_q)
    return target_log_prob(target, x) - logq


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
        n = self.num_samples
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < minimum):
            raise ValueError(
                f"{type(self).__name__}: num_samples must be an int >= {minimum}; got {n!r}"
            )


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

    References:
      Roeder, Wu, Duvenaud (2017). Sticking the landing: simple, lower-variance
      gradient estimators for variational inference.
    """

    num_samples: int = DEFAULT_NUM_SAMPLES
    gradient: Optional[str] = None
    analytic_entropy: bool = True

    def __post_init__(self):
        self._check_num_samples()
        if self.gradient not in (None, "reparam", "stl", "score"):
            raise ValueError(
                f"ReverseKL: gradient must be 'reparam', 'stl', 'score' or None; got {self.gradient!r}"
            )

    def loss_and_aux(self, q, target, key):
        n = self.num_samples
        mixture = _mixture_type()
        if mixture is not None and isinstance(q, mixture):
            gradient = self.gradient or (
                "reparam" if _is_reparameterized(q.components) else "score"
            )
            if gradient != "score":
                return _stratified_mixture_kl(q, target, key, n, stl=gradient == "stl"), {}
        gradient = self.gradient or ("reparam" if _is_reparameterized(q) else "score")
        if gradient in ("reparam", "stl") and not _is_reparameterized(q):
            raise ValueError(
                f"ReverseKL(gradient={gradient!r}) needs a reparameterized q; "
                f"{type(q).__name__} is not (its samples are not differentiable). "
                "Use gradient='score'."
            )
        if gradient == "stl":
            return -jnp.mean(_log_weights(q, target, key, n, stop_q=True)), {}
        entropy = _entropy_or_none(q) if self.analytic_entropy else None
        if gradient == "reparam":
            if entropy is not None:
                x = q.sample(key, (n,))
                return -jnp.mean(target_log_prob(target, x)) - entropy, {}
            return -jnp.mean(_log_weights(q, target, key, n)), {}
        # Score function with a leave-one-out baseline.
        x = _sg(q.sample(key, (n,)))
        logq = q_log_prob(q, x)
        logp = target_log_prob(target, x)
        f = _sg(-logp if entropy is not None else logq - logp)
        baseline = (jnp.sum(f) - f) / (n - 1) if n > 1 else jnp.zeros_like(f)
        surrogate = jnp.mean(_sg(f - baseline) * logq)
        loss = _with_gradient(jnp.mean(f), surrogate)
        return (loss - entropy if entropy is not None else loss), {}


def _mixture_log_weights(q):
    logits = getattr(q, "mixture_logits", None)
    if logits is not None:
        return jax.nn.log_softmax(logits, axis=-1)
    return jnp.log(q.weights)


def _stratified_mixture_kl(q, target, key, n, stl):
    """``sum_k w_k mean_i [log q(x_ki) - log p(x_ki)]``, ``x_ki ~ q_k`` (reparameterized)."""
    if tuple(q.batch_shape) != ():
        raise ValueError(
            "ReverseKL with a Mixture q uses stratified sampling, which needs batch_shape (); "
            f"got {tuple(q.batch_shape)}. Put independent coordinates in the components' events."
        )
    comps = q.components
    if not _is_reparameterized(comps):
        raise ValueError(
            f"Mixture components {type(comps).__name__} are not reparameterized; "
            "use ReverseKL(gradient='score')."
        )
    x = comps.sample(key, (n,))  # (n, K) + event
    k = x.shape[1]
    x = jnp.moveaxis(x, 1, 0).reshape((k * n,) + x.shape[2:])
    logq = q_log_prob(_sg(q) if stl else q, x)
    f = (logq - target_log_prob(target, x)).reshape(k, n)
    return jnp.sum(jnp.exp(_mixture_log_weights(q)) * jnp.mean(f, axis=1))


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

    Args:
      num_samples: draws per step (target samples, or proposals for SNIS).
      batch_size: minibatch size for Empirical data; ``None`` = all data.
      method: ``"auto"``, ``"data"``, ``"samples"`` or ``"snis"``.
    """

    num_samples: int = DEFAULT_NUM_SAMPLES
    batch_size: Optional[int] = None
    method: str = "auto"

    def __post_init__(self):
        self._check_num_samples()
        if self.method not in ("auto", "data", "samples", "snis"):
            raise ValueError(
                f"ForwardKL: method must be 'auto', 'data', 'samples' or 'snis'; got {self.method!r}"
            )
        b = self.batch_size
        if b is not None and (not isinstance(b, int) or isinstance(b, bool) or b < 1):
            raise ValueError(f"ForwardKL: batch_size must be None or an int >= 1; got {b!r}")

    def _method(self, target):
        if self.method != "auto":
            return self.method
        if is_empirical(target):
            return "data"
        return "samples" if hasattr(target, "sample") else "snis"

    def loss_and_aux(self, q, target, key):
        method = self._method(target)
        if method == "data":
            data = jnp.asarray(target.samples)
            if self.batch_size is not None:
                idx = jax.random.randint(key, (self.batch_size,), 0, data.shape[0])
                data = data[idx]
            _check_point_shape(q, data, "the Empirical samples")
            return -jnp.mean(q_log_prob(q, data)), {}
        n = self.num_samples
        if method == "samples":
            x = _sg(target.sample(key, (n,)))
            _check_point_shape(q, x, "the target's samples")
            logq = q_log_prob(q, x)
            if hasattr(target, "log_prob") and not is_empirical(target):
                return jnp.mean(_sg(target_log_prob(target, x)) - logq), {}
            return -jnp.mean(logq), {}
        x = _sg(q.sample(key, (n,)))
        logq = q_log_prob(q, x)
        logw = _sg(target_log_prob(target, x) - logq)
        w = jax.nn.softmax(logw)
        value = jnp.sum(w * logw) - _log_mean_exp(logw)
        surrogate = -jnp.sum(w * logq)
        ess = 1.0 / jnp.sum(w * w)
        return _with_gradient(value, surrogate), {"ess": ess}


# ----------------------------------------------------------------------------- Rényi family
def _lower_bound_loss(logw, alpha):
    """``-L_a``, ``L_a = (1/(1-a)) log mean w^(1-a)`` (``mean log w`` at ``a = 1``)."""
    if alpha == 1:
        return -jnp.mean(logw)
    beta = 1.0 - alpha
    return -_log_mean_exp(beta * logw) / beta


def _upper_bound_loss(logw, beta, log_normalizer):
    """``(1/beta) log mean w^beta`` (``beta > 1``) with CHIVI's unbiased exp-form gradient.

    The value is the log-mean-exp estimate; the gradient is that of
    ``mean exp(beta (log w - c)) / beta`` with a constant ``c = log_normalizer``:
    an unbiased estimate of ``grad E_q[w^beta]`` up to the positive constant
    ``exp(-beta c) / beta``. (The gradient of the log-mean-exp itself is
    self-normalized and biased; minimizing it collapses ``q`` onto a narrow
    region far from ``p``, where no draw sees the heavy tail of ``p/q``.)
    """
    value = _log_mean_exp(beta * logw) / beta
    surrogate = jnp.mean(jnp.exp(beta * (logw - log_normalizer))) / beta
    return _with_gradient(value, surrogate)


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

    References:
      Li & Turner (2016). Rényi divergence variational inference. NeurIPS.
    """

    alpha: float = 0.5
    num_samples: int = DEFAULT_NUM_SAMPLES
    log_normalizer: float = 0.0

    def __post_init__(self):
        self._check_num_samples()
        if not isinstance(self.alpha, (int, float)) or not math.isfinite(self.alpha):
            raise ValueError(f"Renyi: alpha must be a finite Python float; got {self.alpha!r}")
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "log_normalizer", float(self.log_normalizer))

    def loss_and_aux(self, q, target, key):
        _require_reparam(self, q)
        logw = _log_weights(q, target, key, self.num_samples)
        if self.alpha < 0:
            return _upper_bound_loss(logw, 1.0 - self.alpha, self.log_normalizer), {}
        return _lower_bound_loss(logw, self.alpha), {}


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
    """

    num_particles: int = DEFAULT_NUM_SAMPLES
    num_samples: Optional[int] = None
    gradient: str = "reparam"

    def __post_init__(self):
        self._check_num_samples()
        k = self.num_particles
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"IWAE: num_particles must be an int >= 1; got {k!r}")
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
        logw = _log_weights(q, target, key, n, stop_q=dreg).reshape(n // k, k)
        bound = jnp.mean(_log_mean_exp(logw, axis=-1))
        if not dreg:
            return -bound, {}
        w = _sg(jax.nn.softmax(logw, axis=-1))
        surrogate = jnp.sum(w * w * logw) / (n // k)
        return _with_gradient(-bound, -surrogate), {}


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
    """

    n: float = 2.0
    num_samples: int = DEFAULT_NUM_SAMPLES
    log_normalizer: float = 0.0

    def __post_init__(self):
        self._check_num_samples()
        if not isinstance(self.n, (int, float)) or not self.n > 1:
            raise ValueError(f"ChiSquare: n must be a Python number > 1; got {self.n!r}")
        object.__setattr__(self, "n", float(self.n))
        object.__setattr__(self, "log_normalizer", float(self.log_normalizer))

    def loss_and_aux(self, q, target, key):
        _require_reparam(self, q)
        logw = _log_weights(q, target, key, self.num_samples)
        return _upper_bound_loss(logw, self.n, self.log_normalizer), {}


def _require_reparam(obj, q):
    if not _is_reparameterized(q):
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
