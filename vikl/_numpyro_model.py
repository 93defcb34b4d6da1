"""NumPyro models as vikl targets: :class:`NumPyroModel`, :class:`NumPyroLayout`, :func:`to_arviz`.

``NumPyroModel(model, *args, **kwargs)`` traces the model once and turns it
into a target on ``R^d``: the latent sites are mapped from one flat
unconstrained vector ``u`` (size ``d``) by a block bijector (each site through
NumPyro's own ``biject_to`` map of its support, see
:mod:`vikl._numpyro_constraints`), and ``log_prob(u)`` is the model's joint
log density at the constrained values plus ``log|det J(u)|`` -- minus
NumPyro's potential energy. Any objective that needs only ``log_prob`` (the
reverse KL, Renyi, IWAE, chi-square, and the self-normalized forward KL from
q's own draws) fits it with any ``q`` on ``R^d``.

A model with ``numpyro.plate(name, N, subsample_size=B)`` is a minibatch
target: :class:`vikl.objectives.ReverseKL` draws ``B`` of the ``N`` indices
from each step's key (uniform, with replacement, as :class:`vikl.Posterior`),
substitutes them into the plate, and NumPyro scales the sites inside it by
``N / B``: an unbiased estimate of the full-data negative ELBO. ``log_prob``
(other objectives, diagnostics) runs the plate over all ``N`` indices.

The *layout* (:class:`NumPyroLayout`, a vikl Module: site names, shapes and
the block bijector, no model function) maps draws of ``q`` back to named
constrained sites, ``layout.constrain(u)``; it is what a saved
:class:`vikl.FitResult` keeps. Deterministic sites need the model itself:
``NumPyroModel.constrain(u, deterministic=True)``.

NumPyro (and ArviZ for :func:`to_arviz`) is imported only when used; this
module imports without them.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vikl._base import Module, static
from vikl._numpyro_constraints import bijector_for_numpyro, site_block

__all__ = ["NumPyroModel", "NumPyroLayout", "to_arviz"]


# ----------------------------------------------------------------------------- the layout
class NumPyroLayout(Module):
    """Where each latent site of a model lives in the flat unconstrained vector.

    Attributes:
      bijector: the block bijector from ``u`` (shape ``(..., d)``) to the
        flat constrained vector of all sites.
      names: the latent site names, in model order.
      shapes: their constrained shapes.
      dims: a name for each axis of each site (the enclosing ``numpyro.plate``'s
        name, else ``"<site>_dim_<i>"``): ArviZ dimension names.
    """

    bijector: Any = None
    names: tuple = static(default=())
    shapes: tuple = static(default=())
    dims: tuple = static(default=())

    @property
    def dim(self) -> int:
        """``d``, the size of the flat unconstrained vector."""
        return int(self.bijector.in_size)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    def _check_u(self, u, what="u"):
        shape = jnp.shape(u)
        if len(shape) < 1 or shape[-1] != self.dim:
            raise ValueError(
                f"{what} must have shape (..., {self.dim}) (the flat unconstrained vector of "
                f"the sites {list(self.names)}); got shape {tuple(shape)}"
            )

    def _split(self, flat):
        return dict(zip(self.names, self.bijector.split_outputs(flat)))

    def constrain_and_log_det(self, u):
        """``({site: value}, log|det J(u)|)``; leading axes of ``u`` are kept in both."""
        self._check_u(u)
        flat, ld = self.bijector.forward_and_log_det(jnp.asarray(u))
        return self._split(flat), ld

    def constrain(self, u):
        """The named sites on their constrained scale at ``u`` (shape ``(..., d)``).

        Returns a dict ``{name: array of shape (...,) + site shape}``.
        """
        return self.constrain_and_log_det(u)[0]

    def unconstrain(self, values):
        """The flat ``u`` of a dict of constrained site values (leading axes kept)."""
        missing = [n for n in self.names if n not in values]
        if missing:
            raise ValueError(f"unconstrain: values lacks the latent sites {missing}")
        return self.bijector.inverse(self.bijector.join_outputs([values[n] for n in self.names]))


# ----------------------------------------------------------------------------- tracing
def _numpyro_promotion():
    """JAX's default dtype promotion while NumPyro code runs: NumPyro mixes dtypes (e.g.
    Bernoulli's support check xors a float with a bool), which a user's
    ``jax_numpy_dtype_promotion="strict"`` would reject inside its code."""
    return jax.numpy_dtype_promotion("standard")


def _trace(model, args, kwargs, seed):
    """A trace of ``model``. Latent values are drawn as NumPyro's ``init_to_uniform`` does
    (uniform on (-2, 2) in unconstrained space, which also works for improper priors);
    where that fails (a support NumPyro cannot map), from the priors."""
    from numpyro import handlers
    from numpyro.infer.initialization import init_to_uniform

    uniform = handlers.substitute(handlers.seed(model, rng_seed=seed), substitute_fn=init_to_uniform)
    try:
        with _numpyro_promotion():
            return handlers.trace(uniform).get_trace(*args, **kwargs)
    except Exception:  # noqa: BLE001 - retried below, and that error is reported
        pass
    try:
        with _numpyro_promotion():
            return handlers.trace(handlers.seed(model, rng_seed=seed)).get_trace(*args, **kwargs)
    except Exception as err:
        raise ValueError(
            f"NumPyroModel: running the model {getattr(model, '__name__', model)!r} with the "
            f"given arguments failed ({type(err).__name__}: {err})"
        ) from err


@functools.lru_cache(maxsize=None)
def _full_plates_handler():
    """A NumPyro handler class that runs subsampled plates over all their indices."""
    from numpyro.primitives import Messenger

    class FullPlates(Messenger):
        """Every plate named in ``plates`` takes all ``size`` indices (no subsample, scale 1)."""

        def __init__(self, fn, plates):
            self.plates = frozenset(plates)
            super().__init__(fn)

        def process_message(self, msg):
            if msg["type"] == "plate" and msg["name"] in self.plates:
                size = msg["args"][0]
                msg["args"] = (size, None)
                msg["value"] = jnp.arange(size)

    return FullPlates


def _full_data(model, plates):
    """``model`` with its subsampled ``plates`` (names) run over the full data."""
    if not plates:
        return model
    return _full_plates_handler()(model, plates)


def _constraint_leaves(c):
    """The numeric attributes of a constraint (its bounds), nested constraints included."""
    out = []
    for _, v in sorted(vars(c).items()):
        if hasattr(v, "is_discrete"):  # a wrapped constraint (independent)
            out.extend(_constraint_leaves(v))
        elif isinstance(v, (jax.Array, np.ndarray, np.generic, int, float)):
            out.append(v)
    return out


def _depends_on_inputs(closed_jaxpr):
    """For each output of a jaxpr: whether it depends on the inputs (a data-flow walk)."""
    jaxpr = closed_jaxpr.jaxpr
    dep = {id(v) for v in jaxpr.invars}
    for eqn in jaxpr.eqns:
        if any(id(v) in dep for v in eqn.invars if type(v).__name__ != "Literal"):
            dep.update(id(v) for v in eqn.outvars)
    return [type(v).__name__ != "Literal" and id(v) in dep for v in jaxpr.outvars]


def _subsampled_plates(trace):
    """``((name, size, subsample_size), ...)`` of the plates that subsample, in model order."""
    return tuple(
        (name, int(site["args"][0]), int(site["args"][1])) for name, site in trace.items()
        if site["type"] == "plate" and site["args"][1] is not None
        and site["args"][1] < site["args"][0])


def _latent_sites(trace):
    """Checks the trace and returns its latent continuous sample sites (in order)."""
    latent, discrete, params, local = [], [], [], []
    subsampled = {p[0] for p in _subsampled_plates(trace)}
    for name, site in trace.items():
        if site["type"] == "param":
            params.append(name)
        if site["type"] != "sample" or site["is_observed"]:
            continue
        if site.get("infer", {}).get("is_auxiliary"):
            continue
        frames = {f.name for f in site.get("cond_indep_stack", ()) or ()}
        if frames & subsampled:
            local.append(f"{name!r} (plate {sorted(frames & subsampled)[0]!r})")
        fn = site["fn"]
        if getattr(fn, "is_discrete", False) or fn.support.is_discrete:
            discrete.append(f"{name} ({type(fn).__name__})")
        else:
            latent.append(name)
    if local:
        raise NotImplementedError(
            f"NumPyroModel: the latent sites {', '.join(local)} lie inside a plate with "
            "subsample_size (local latent variables of a minibatch); vikl fits global "
            "latents only. Move them out of the subsampled plate, or drop subsample_size"
        )
    if discrete:
        raise ValueError(
            f"NumPyroModel: the model has discrete latent sites {discrete}; variational "
            "fitting in unconstrained space needs continuous latents. Marginalize them out "
            "(e.g. a mixture: numpyro.distributions.MixtureSameFamily, or "
            "numpyro.contrib.funsor enumeration with infer={'enumerate': 'parallel'} and "
            "log_density from funsor) or observe them"
        )
    if params:
        raise ValueError(
            f"NumPyroModel: the model has numpyro.param sites {params}; a target has no "
            "learnable parameters. Pass their values as model arguments, or make them latent "
            "sample sites with a prior"
        )
    if not latent:
        raise ValueError(
            "NumPyroModel: the model has no latent sample sites (every numpyro.sample site is "
            "observed), so there is nothing to fit; leave at least one site unobserved"
        )
    return latent


def _check_static_supports(model, args, kwargs, trace, latent):
    """Raises when a latent site's support bounds depend on other latent values.

    The model is traced abstractly (``jax.make_jaxpr``, nothing is compiled)
    with the latent values as inputs; a bound that depends on them (e.g.
    ``x ~ Uniform(0, s)`` with a latent ``s``) cannot be mapped by a fixed bijector.
    """
    from numpyro import handlers

    def bounds(values):
        sub = handlers.seed(handlers.substitute(model, data=values), rng_seed=0)
        tr = handlers.trace(sub).get_trace(*args, **kwargs)
        missing = [n for n in latent if n not in tr]
        if missing:
            raise ValueError(
                f"NumPyroModel: the latent sites {missing} appear in one run of the model and "
                "not in another; the model's sites must not depend on random values")
        return [[jnp.asarray(b) for b in _constraint_leaves(tr[n]["fn"].support)] for n in latent]

    values = {n: trace[n]["value"] for n in latent}
    with _numpyro_promotion():
        closed, shapes = jax.make_jaxpr(bounds, return_shape=True)(values)
    flags = iter(_depends_on_inputs(closed))
    for name, site_bounds in zip(latent, shapes):
        if any(next(flags) for _ in site_bounds):
            raise NotImplementedError(
                f"NumPyroModel: the support of the site {name!r} "
                f"({trace[name]['fn'].support!r}) depends on other latent values; vikl's layout "
                "maps each site with a fixed bijector. Reparameterize the site (e.g. sample "
                "z ~ Uniform(0, 1) and set x = low + (high - low) * z with "
                "numpyro.deterministic)"
            )


def site_dims(site) -> tuple[str, ...]:
    """A name for each axis of a traced site: its plate's name, else ``<site>_dim_<i>``."""
    shape = tuple(jnp.shape(site["value"]))
    names = [f"{site['name']}_dim_{i}" for i in range(len(shape))]
    fn = site.get("fn")
    event_ndims = len(getattr(fn, "event_shape", ())) if fn is not None else 0
    for frame in site.get("cond_indep_stack", ()) or ():
        axis = len(shape) - event_ndims + frame.dim
        if 0 <= axis < len(shape) - event_ndims and shape[axis] == frame.size:
            names[axis] = frame.name
    return tuple(names)


def _build_layout(trace, latent):
    pieces, shapes = [], []
    for name in latent:
        site = trace[name]
        try:
            pieces.append(bijector_for_numpyro(site["fn"].support))
        except (ValueError, NotImplementedError) as err:
            raise type(err)(f"NumPyroModel: latent site {name!r}: {err}") from err
        shapes.append(tuple(int(s) for s in jnp.shape(site["value"])))
    dims = tuple(site_dims(trace[n]) for n in latent)
    return NumPyroLayout(site_block(pieces, shapes), tuple(latent), tuple(shapes), dims)


class _ById:
    """An unhashable static model argument, compared by identity (a jit cache key)."""

    def __init__(self, value):
        self.value = value

    def __hash__(self):
        return id(self.value)

    def __eq__(self, other):
        return isinstance(other, _ById) and other.value is self.value


def _is_array(x) -> bool:
    return isinstance(x, (jax.Array, np.ndarray, np.generic))


def _static_leaf(x):
    try:
        hash(x)
    except TypeError:
        return _ById(x)
    return x


def _flatten_model(m):
    # Array leaves of the arguments (the data) are children: inputs of a compiled program.
    # Other leaves (Python numbers, strings, None) stay static: a model may use them as
    # shapes, plate sizes or flags.
    leaves, treedef = jax.tree_util.tree_flatten((m.args, m.kwargs))
    mask = tuple(_is_array(x) for x in leaves)
    arrays = tuple(x for x, k in zip(leaves, mask) if k)
    statics = tuple(None if k else _static_leaf(x) for x, k in zip(leaves, mask))
    aux = (m.model, m.deterministic_names, m.deterministic_dims, m.observed_names,
           m.subsample_plates, treedef, mask, statics)
    return (m.layout, arrays), aux


def _unflatten_model(aux, children):
    obj = object.__new__(NumPyroModel)
    (obj.model, obj.deterministic_names, obj.deterministic_dims, obj.observed_names,
     obj.subsample_plates, treedef, mask, statics) = aux
    obj.layout, arrays = children
    it = iter(arrays)
    leaves = [next(it) if k else (x.value if isinstance(x, _ById) else x)
              for k, x in zip(mask, statics)]
    obj.args, obj.kwargs = jax.tree_util.tree_unflatten(treedef, leaves)
    return obj


def _log_prob_flat(target, u):
    """``log p(b(u)) + log|det J_b(u)|`` for ``u`` of shape ``(n, d)``."""
    values, ld = target.layout.constrain_and_log_det(u)
    lp = jax.vmap(target._log_joint)(values)
    return lp.astype(ld.dtype) + ld


def _deterministic_flat(target, values):
    return jax.vmap(target._deterministic)(values)


_log_prob_jit = jax.jit(_log_prob_flat)
_deterministic_jit = jax.jit(_deterministic_flat)


class NumPyroModel:
    """A NumPyro model as a vikl target on ``R^d``.

    ``NumPyroModel(model, *args, **kwargs)`` -- the arguments are those of
    ``model(*args, **kwargs)``, the observed data included (as with
    ``numpyro.infer.MCMC.run(key, *args, **kwargs)``). The model is traced
    once (seeded with ``PRNGKey(0)``) to find its latent sites; an abstract
    trace (``jax.make_jaxpr``, nothing compiled) checks that no site's support
    depends on other latent values. Model structure must be static (no site whose presence
    depends on a latent value).

    ``log_prob(u)`` for ``u`` of shape ``(..., d)`` returns shape ``(...)``:
    the model's joint log density (priors and likelihood, plate scales
    included) at ``layout.constrain(u)`` plus the log-Jacobian of the map --
    exactly ``-numpyro.infer.util.potential_energy`` at the same unconstrained
    point (each site uses NumPyro's own ``biject_to`` map). Nothing is checked
    inside ``jit`` except shapes.

    Minibatches: a model with a ``numpyro.plate(name, N, subsample_size=B)``
    (``B < N``) around its likelihood is fitted by the reverse KL on
    minibatches. Each step splits its key into ``key_batch, key_q``; from
    ``key_batch`` vikl draws the plate's ``B`` indices (i.i.d. uniform on
    ``0..N-1``, WITH replacement, fresh each step, as :class:`vikl.Posterior`
    does; several subsampled plates get one split of ``key_batch`` each),
    substitutes them into the plate (so ``with plate(...) as idx`` and
    ``numpyro.subsample`` see them), shares them among all ``num_samples``
    draws of ``q`` (from ``key_q``), and NumPyro's trace scales the log
    density of every site inside the plate by ``N / B``:

        -ELBO ~ -mean_k [log p(theta_k) + (N/B) sum_{i in batch} log p(y_i | theta_k)
                         + log|det J(u_k)|] - H(q),

    unbiased for the full-data value and its gradient (``q``'s analytic
    entropy, the gradient estimator and the draws are the objective's). The
    same model written as :class:`vikl.Posterior` with ``batch_size=B`` and
    ``prior_kl="monte_carlo"`` gives the same number for the same key (up to
    float round-off: the same indices and draws); with the closed-form prior
    KL (its default where it exists) the same value in expectation, with a
    lower variance. NumPyro's own sampler (without replacement; on CPU a
    ``B``-step scan over an ``N``-array each step) is not used: it was over
    20x slower per step at ``N = 100,000``, ``B = 1000``. ``log_prob``, the
    other objectives, ``fit``'s diagnostics and ``constrain(...,
    deterministic=True)`` use the FULL data (the plate over all ``N``
    indices, scale 1). Latent sites inside
    a subsampled plate (local latents) are refused. ``subsample_plates``
    lists ``(name, N, B)`` of each subsampled plate (empty: the plain
    reverse KL on ``log_prob``, unchanged).

    It is a JAX pytree: the array leaves of the model arguments are inputs of
    a compiled fit (a list of models differing only in data fits in one
    batched ``vikl.fit``); the model function is static.

    Attributes:
      model: the model function.
      args, kwargs: its arguments.
      layout: the :class:`NumPyroLayout` (latent site names, shapes, bijector).
      deterministic_names: names of ``numpyro.deterministic`` sites (and
        ``deterministic_dims``, their ArviZ dimension names).
      observed_names: names of observed sample sites.
      subsample_plates: ``((name, N, B), ...)`` of the plates with ``subsample_size``.

    Raises:
      ValueError: the model has discrete latent sites (named), no latent
        site, ``numpyro.param`` sites, or fails to run with the arguments.
      NotImplementedError: a site's support has no vikl bijector, or depends
        on other latent values, or lies inside a subsampled plate (named).
      TypeError: ``model`` is not callable.
    """

    def __init__(self, model, *args, **kwargs):
        if not callable(model):
            raise TypeError(
                f"NumPyroModel: model must be a callable NumPyro model function; got "
                f"{type(model).__name__}"
            )
        trace = _trace(model, args, kwargs, 0)
        latent = _latent_sites(trace)
        _check_static_supports(model, args, kwargs, trace, latent)
        self.model = model
        self.args = tuple(args)
        self.kwargs = dict(kwargs)
        self.layout = _build_layout(trace, latent)
        self.deterministic_names = tuple(
            n for n, s in trace.items() if s["type"] == "deterministic")
        self.deterministic_dims = tuple(site_dims(trace[n]) for n in self.deterministic_names)
        self.observed_names = tuple(
            n for n, s in trace.items() if s["type"] == "sample" and s["is_observed"])
        self.subsample_plates = _subsampled_plates(trace)

    # ------------------------------------------------------------------ shapes
    @property
    def dim(self) -> int:
        """``d``: the size of the flat unconstrained vector (pass it to a family)."""
        return self.layout.dim

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.dim,)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def site_shapes(self) -> dict:
        """``{latent site name: constrained shape}``."""
        return dict(zip(self.layout.names, self.layout.shapes))

    def __repr__(self):
        sites = ", ".join(f"{n}{list(s)}" for n, s in zip(self.layout.names, self.layout.shapes))
        name = getattr(self.model, "__name__", type(self.model).__name__)
        return f"NumPyroModel({name}, dim={self.dim}, latent sites: {sites})"

    # ------------------------------------------------------------------ densities
    def _log_joint(self, values):
        from numpyro.infer.util import log_density

        model = _full_data(self.model, [p[0] for p in self.subsample_plates])
        with _numpyro_promotion():
            return log_density(model, self.args, self.kwargs, values)[0]

    def _minibatch_indices(self, key):
        """``{plate name: B indices}``: i.i.d. uniform on ``0..N-1``, with replacement, per
        subsampled plate (one plate uses ``key`` itself, as :class:`vikl.Posterior` does)."""
        plates = self.subsample_plates
        keys = [key] if len(plates) == 1 else list(jax.random.split(key, len(plates)))
        return {name: jax.random.randint(k, (size_b,), 0, size)
                for k, (name, size, size_b) in zip(keys, plates)}

    def _log_joint_minibatch(self, values, indices):
        """The model's log joint with its subsampled plates over ``indices`` (NumPyro scales
        the sites inside each by ``N / B``)."""
        from numpyro import handlers
        from numpyro.infer.util import log_density

        model = handlers.substitute(self.model, data=indices)
        with _numpyro_promotion():
            return log_density(model, self.args, self.kwargs, values)[0]

    @property
    def reverse_kl_loss(self):
        """``reverse_kl_loss(objective, q, key) -> (loss, aux)``: the minibatch negative ELBO
        of :class:`vikl.objectives.ReverseKL` (only for a model with a subsampled plate;
        ``AttributeError`` otherwise, so that the plain reverse KL on :meth:`log_prob` is used).

        The step key is split into ``key_batch, key_q``. ``key_batch`` draws each
        subsampled plate's ``B`` indices (i.i.d. uniform, with replacement, fresh each step;
        the same indices as ``vikl.Posterior(batch_size=B)`` for one plate), substituted
        into the plate and shared by all ``num_samples`` draws of ``q`` (from ``key_q``);
        the log joint is NumPyro's, the sites inside the plate scaled by ``N / B``.
        ``q``'s analytic entropy, the gradient estimator and the draws are those of the
        objective, as for any target. Unbiased for the full-data negative ELBO and its
        gradient.
        """
        if not self.subsample_plates:
            raise AttributeError(
                "reverse_kl_loss: the model has no plate with subsample_size; the reverse KL "
                "uses log_prob (the full data)")
        return self._minibatch_reverse_kl_loss

    def _minibatch_reverse_kl_loss(self, objective, q, key):
        key_batch, key_q = jax.random.split(key)
        indices = self._minibatch_indices(key_batch)

        def log_density(u):  # ONE point u of shape (d,); the minibatch is shared by the draws
            values, ld = self.layout.constrain_and_log_det(u)
            return self._log_joint_minibatch(values, indices).astype(ld.dtype) + ld

        return objective.loss_and_aux(q, log_density, key_q)

    def log_prob(self, u):
        """Unnormalized log posterior density of the flat unconstrained ``u`` (``(..., d)`` -> ``(...)``)."""
        self.layout._check_u(u)
        u = jnp.asarray(u)
        lead = u.shape[:-1]
        return _log_prob_jit(self, u.reshape((-1, self.dim))).reshape(lead)

    def __call__(self, u):
        return self.log_prob(u)

    # ------------------------------------------------------------------ sites
    def constrain(self, u, deterministic: bool = False) -> dict:
        """Named constrained sites at ``u`` (``(..., d)``); with ``deterministic=True``
        the ``numpyro.deterministic`` sites too (they need the model, so a loaded
        layout alone cannot give them)."""
        values = self.layout.constrain(u)
        if not deterministic or not self.deterministic_names:
            return values
        lead = jnp.shape(u)[:-1]
        flat = {k: v.reshape((-1,) + v.shape[len(lead):]) for k, v in values.items()}
        dets = _deterministic_jit(self, flat)
        values.update({k: v.reshape(lead + v.shape[1:]) for k, v in dets.items()})
        return values

    def _deterministic(self, values):
        from numpyro import handlers

        model = _full_data(self.model, [p[0] for p in self.subsample_plates])
        model = handlers.seed(handlers.substitute(model, data=values), rng_seed=0)
        with _numpyro_promotion():
            trace = handlers.trace(model).get_trace(*self.args, **self.kwargs)
        return {n: trace[n]["value"] for n in self.deterministic_names}

    def unconstrain(self, values) -> jax.Array:
        """The flat ``u`` of a dict of constrained latent site values."""
        return self.layout.unconstrain(values)

    def to_arviz(self, result, key, num_draws: int = 1000):
        """:func:`to_arviz` of a fit of this model, deterministic sites included."""
        return to_arviz(result, key, num_draws, model=self)


jax.tree_util.register_pytree_node(NumPyroModel, _flatten_model, _unflatten_model)


# ----------------------------------------------------------------------------- ArviZ
def _unconstrained_draws(result, key, num_draws):
    """Draws of the fitted q in unconstrained space: ``(chains, num_draws, d)``.

    One chain per member of a batched fit (its ``q`` has a leading member axis).
    """
    q = getattr(result, "unconstrained_distribution", result.distribution)
    batch = getattr(result, "batch_size", None)
    if batch is None:
        return q.sample(key, (num_draws,))[None]
    keys = jax.random.split(key, batch)
    return jax.vmap(lambda qi, k: qi.sample(k, (num_draws,)))(q, keys)


def to_arviz(result, key, num_draws: int = 1000, *, model=None, layout=None):
    """Posterior draws of a fitted ``q`` as an ``arviz.InferenceData``.

    Args:
      result: a :class:`vikl.FitResult` of a fit to a :class:`NumPyroModel`
        (its ``unconstrained_distribution`` lives on ``R^d``); also a loaded
        one (its saved ``layout`` is used). A batched
        fit gives one ArviZ *chain* per batch member (restarts side by side:
        ArviZ's between-chain diagnostics then compare the restarts).
      key: PRNG key for the draws.
      num_draws: draws per chain.
      model: the :class:`NumPyroModel` (adds its deterministic sites); else
        ``layout``, else the result's own ``layout``.
      layout: a :class:`NumPyroLayout` (e.g. of a loaded result).

    Returns:
      ``arviz.InferenceData`` with a ``posterior`` group of the latent sites
      (and deterministic ones with ``model``), dims ``(chain, draw, ...)``.
    """
    import arviz as az

    if not isinstance(num_draws, int) or isinstance(num_draws, bool) or num_draws < 1:
        raise ValueError(f"to_arviz: num_draws must be a positive int; got {num_draws!r}")
    u = _unconstrained_draws(result, key, num_draws)
    if model is not None:
        values = model.constrain(u, deterministic=True)
    elif layout is not None:
        values = layout.constrain(u)
    else:
        layout = getattr(result, "layout", None)
        if not isinstance(layout, NumPyroLayout):
            raise ValueError(
                "to_arviz: the result has no NumPyro layout (got "
                f"{type(layout).__name__}); pass model= (the NumPyroModel) or layout=")
        if getattr(result, "batch_size", None) is None:
            values = layout.constrain(u[0])
            values = {k: v[None] for k, v in values.items()}
        else:  # one layout per member (leading axis), as vikl.fit stores it
            values = jax.vmap(lambda lay, ui: lay.constrain(ui))(layout, u)
    dims = dict(zip(layout.names, layout.dims)) if layout is not None else {}
    if model is not None:
        dims = dict(zip(model.layout.names, model.layout.dims))
        dims.update(zip(model.deterministic_names, model.deterministic_dims))
    dims = {k: list(v) for k, v in dims.items() if k in values}
    return az.from_dict(posterior={k: np.asarray(v) for k, v in values.items()}, dims=dims)

