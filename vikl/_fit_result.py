"""What :func:`vikl.fit` gives back: the record :class:`FitResult` and :class:`FitDivergedError`.

``FitResult`` holds data; its diagnostics are computed on first access. Its
file format lives in :mod:`vikl._persistence` (``save``/``load`` delegate
there) and continuing a fit's optimizer in :mod:`vikl._optimizers`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import numpy as np

from vikl import _persistence
from vikl._diagnostics import ISDiagnostics
from vikl._optimizers import ClipGradientSpikesState, OptLeaves

__all__ = ["FitResult", "FitDivergedError", "FitWarning"]


class FitWarning(UserWarning):
    """Warned by :func:`vikl.fit` when a fit cannot be trusted.

    After a fit without ``num_steps`` (and with ``check=True`` after one with
    it): a PSIS k-hat above 0.7 (``q`` misses mass of the target), a stopping
    rule that never held within ``max_steps``, or a fitted scale that
    collapsed (below 1e-6 of its initial value, or near float underflow).
    Each message names the number, what it means and what to try; the same
    texts are kept in ``FitResult.warnings`` and shown by
    :meth:`FitResult.summary`. Silence them with ``fit(..., check=False)`` or
    ``warnings.filterwarnings("ignore", category=vikl.FitWarning)``.
    """


# ----------------------------------------------------------------------------- errors
class FitDivergedError(FloatingPointError):
    """Raised by :func:`vikl.fit` when a loss, gradient or updated parameter is NaN or infinite.

    Attributes:
      step: index of the first non-finite step (counting continued steps).
      value: the loss at that step (non-finite when ``what == "loss"``).
      last_finite_loss: the last finite loss before it (``None`` if none).
      losses: the loss history of the diverged run up to ``step`` (NumPy).
      member: index of the diverged member in a batched fit, else ``None``.
      what: what was non-finite first: ``"loss"``, ``"gradient"`` or
        ``"parameters"`` (the parameters after that step's update).
      last_finite_params: the unconstrained parameters before step ``step``
        (after ``step`` updates; all finite), of ``member`` in a batched fit;
        ``None`` where unknown.
      last_finite_distribution: the ``q`` of ``last_finite_params`` (restart
        from it with a lower learning rate); ``None`` where unknown. For a
        target fitted in unconstrained space this ``q`` lives there too.
        Also available as ``distribution``.
    """

    WHATS = ("loss", "gradient", "parameters")

    def __init__(self, step, value, last_finite_loss, losses, member=None, *, what="loss",
                 last_finite_params=None, last_finite_distribution=None):
        if what not in self.WHATS:
            raise ValueError(f"FitDivergedError: what must be one of {self.WHATS}; got {what!r}")
        self.step = step
        self.value = value
        self.last_finite_loss = last_finite_loss
        self.losses = losses
        self.member = member
        self.what = what
        self.last_finite_params = last_finite_params
        self.last_finite_distribution = last_finite_distribution
        super().__init__(self._message())

    @property
    def distribution(self):
        """The same as ``last_finite_distribution`` (a ``q`` to restart from)."""
        return self.last_finite_distribution

    def _message(self) -> str:
        where = f" (batch member {self.member})" if self.member is not None else ""
        if self.what != "loss":
            return (
                f"fit diverged: the {self.what} became NaN or infinite at step {self.step}{where} "
                f"(the loss there was {self.value:.6g}). Lower the learning rate, start q0 closer "
                "to the target, check that the target's log density and its gradient are finite "
                "on q's support (e.g. no sqrt or log of a value that can be 0 or negative), or "
                "use more samples."
            )
        last = (
            f"the last finite loss was {self.last_finite_loss:.6g} at step {self.step - 1}"
            if self.last_finite_loss is not None and self.step > 0
            else "no finite loss was seen before it"
        )
        return (
            f"fit diverged: the loss is {self.value} at step {self.step}{where}; {last}. Lower the "
            "learning rate, start q0 closer to the target (e.g. a smaller scale), check that the "
            "target's log density is finite on q's support, or use more samples."
        )

    def __reduce__(self):  # pickle (e.g. across processes) calls __init__ with these
        return (_rebuild_diverged, (self.step, self.value, self.last_finite_loss, self.losses,
                                    self.member, self.what, self.last_finite_params,
                                    self.last_finite_distribution))


def _rebuild_diverged(step, value, last_finite_loss, losses, member, what, params, distribution):
    return FitDivergedError(step, value, last_finite_loss, losses, member, what=what,
                            last_finite_params=params, last_finite_distribution=distribution)


# ----------------------------------------------------------------------------- result
@dataclasses.dataclass(frozen=True, eq=False)
class FitResult:
    """What :func:`vikl.fit` returns.

    Attributes:
      distribution: the fitted ``q`` (a Distribution of ``q0``'s type). For a
        batched fit its leaves carry a leading batch axis: use ``result[i]``
        or ``result.best``.
      params: the unconstrained parameters (``vikl._params.unconstrain``).
      losses: NumPy array of the loss at every step (all continued steps);
        shape ``(num_steps,)`` or ``(batch, num_steps)``.
      opt_state: the optax state after the last step.
      key: the run's key (a batch of keys for batched fits).
      num_steps: total steps taken, counting continued fits.
      objective: the objective (``None`` for a loaded user function).
      optimizer: the optax transformation (``None`` when loaded from a file
        and not the default Adam).
      diagnostics: :class:`ISDiagnostics` (PSIS ``khat``, importance ``ess``)
        of the final ``q`` against the target (``nan`` when the target has
        no log density); computed on first access (``khat``, ``ess``,
        ``repr`` and ``save`` access it), so a fit that never asks pays
        nothing for them.
      trace: per-step auxiliary values reported by the objective (e.g.
        ``"ess"`` for self-normalized forward KL), NumPy arrays.
      batch_size: number of fits run together, ``None`` for a single fit.
      wall_time: seconds spent in the loop in this call (first calls include
        compilation).
      layout: for a target fitted in unconstrained space (a target with a
        constrained support, an explicit :func:`vikl.unconstrained` view, a
        NumPyro model), the object that maps an unconstrained point ``u`` to
        the target's scale (``layout.constrain(u)``); ``None`` for a target
        fitted directly. It is saved with the result, so :meth:`draws` and
        ``distribution`` work after :meth:`load` without the target.
      converged: whether the stopping rule held (a fit without
        ``num_steps``); ``None`` for a fit of a fixed ``num_steps``.
      converged_at: the step count (counting continued steps) at which the
        rule held, else ``None``.
      convergence: the rule and its final statistics, in words (``None``
        for a fit of a fixed ``num_steps``).
      averaged_over: the number of last iterates whose unconstrained
        parameters were averaged into ``params`` and ``distribution``
        (Polyak-Ruppert; 1: the last iterate).
      init: the initializer that set the starting ``q`` (e.g.
        ``"pathfinder"``), ``None`` if ``q0`` was used as given.
      warnings: the texts of the :class:`FitWarning` s of this fit (a tuple).

    Constrained fits. With a ``layout``, ``distribution`` is the fitted ``q``
    on the target's own scale (for a bijector layout the push-forward
    ``vikl.Transformed(q, bijector)``; for a layout whose points are dicts of
    named sites, the unconstrained ``q``), :attr:`unconstrained_distribution`
    is ``q`` in unconstrained space (what a continued fit starts from) and
    ``params`` are ``q``'s unconstrained parameters as always.
    """

    distribution: Any
    params: Any
    losses: np.ndarray
    opt_state: Any
    key: Any
    num_steps: int
    objective: Any
    optimizer: Any
    _diagnostics: Any  # ISDiagnostics, or a zero-argument function computing it (lazy)
    trace: dict
    batch_size: Optional[int] = None
    wall_time: float = float("nan")
    layout: Any = None
    _unconstrained: Any = None  # q in unconstrained space when it differs from ``distribution``
    converged: Optional[bool] = None
    converged_at: Optional[int] = None
    convergence: Optional[str] = None
    averaged_over: int = 1
    init: Optional[str] = None
    warnings: tuple = ()

    # ---------------------------------------------------------------- constrained fits
    @property
    def unconstrained_distribution(self):
        """The fitted ``q`` in the space the optimizer worked in (``distribution`` without a layout)."""
        return self.distribution if self._unconstrained is None else self._unconstrained

    def draws(self, key, n: int):
        """``n`` draws of the fitted ``q`` on the target's own scale.

        With a :attr:`layout`, ``layout.constrain`` of ``n`` draws of
        :attr:`unconstrained_distribution` (an array, or a dict of named
        arrays for a layout of named sites); without one, ``n`` draws of
        ``distribution``. Each point has a leading axis of length ``n``; a
        batched result draws ``n`` per member with keys
        ``jax.random.split(key, batch_size)`` and adds a leading batch axis.

        Raises:
          ValueError: ``n`` is not an integer >= 0.
        """
        from vikl._validate import check_int

        n = check_int("n", n, 0, where="FitResult.draws")
        key = key if isinstance(key, jax.Array) else jax.numpy.asarray(key)

        def one(q, layout, k):
            u = q.sample(k, (n,))
            return u if layout is None else layout.constrain(u)

        if self.batch_size is None:
            return one(self.unconstrained_distribution, self.layout, key)
        keys = jax.random.split(key, self.batch_size)
        return jax.vmap(one)(self.unconstrained_distribution, self.layout, keys)

    def to_arviz(self, key, num_draws: int = 1000, *, model=None):
        """Posterior draws as an ``arviz.InferenceData`` (needs ArviZ; a NumPyro-model fit).

        ``model`` (the :class:`vikl.NumPyroModel`) adds its deterministic sites;
        a batched result gives one chain per member. See :func:`vikl.to_arviz`.
        """
        from vikl._numpyro_model import to_arviz

        return to_arviz(self, key, num_draws, model=model)

    # ---------------------------------------------------------------- summaries
    @property
    def diagnostics(self) -> ISDiagnostics:
        """:class:`ISDiagnostics` of the fitted ``q`` (computed on first access, then kept)."""
        d = self._diagnostics
        if callable(d):
            d = d()
            object.__setattr__(self, "_diagnostics", d)
        return d

    @property
    def khat(self):
        """PSIS k-hat of the fitted ``q`` (see :class:`ISDiagnostics`)."""
        return self.diagnostics.khat

    @property
    def ess(self):
        """Importance-sampling effective sample size of the fitted ``q``."""
        return self.diagnostics.ess

    @property
    def final_loss(self):
        """Mean loss over the last 10% of steps (at least one): less noisy than the last loss."""
        n = self.losses.shape[-1]
        tail = self.losses[..., n - max(1, n // 10):]
        return np.mean(tail, axis=-1)

    @property
    def best_index(self) -> int:
        """Batch member with the lowest :attr:`final_loss` (batched fits only)."""
        self._require_batch("best_index")
        fl = np.where(np.isfinite(self.final_loss), self.final_loss, np.inf)
        return int(np.argmin(fl))

    @property
    def best(self) -> "FitResult":
        """The member with the lowest :attr:`final_loss`, as a single ``FitResult``."""
        return self[self.best_index]

    def _require_batch(self, what):
        if self.batch_size is None:
            raise TypeError(f"FitResult.{what} needs a batched fit (a batch of keys, q0s or targets)")

    def __len__(self):
        self._require_batch("__len__")
        return self.batch_size

    def __getitem__(self, i) -> "FitResult":
        self._require_batch("__getitem__")
        i = int(i)
        if not -self.batch_size <= i < self.batch_size:
            raise IndexError(f"FitResult index {i} out of range for a batch of {self.batch_size}")
        take = lambda t: jax.tree_util.tree_map(lambda x: x[i], t)  # noqa: E731
        return dataclasses.replace(
            self,
            distribution=take(self.distribution),
            layout=take(self.layout),
            _unconstrained=take(self._unconstrained),
            params=take(self.params),
            losses=self.losses[i],
            opt_state=OptLeaves(x[i] for x in self.opt_state)
            if isinstance(self.opt_state, OptLeaves) else take(self.opt_state),
            key=self.key[i],
            _diagnostics=self.diagnostics[i],
            trace={k: v[i] for k, v in self.trace.items()},
            batch_size=None,
        )

    def __repr__(self):
        batch = f", batch_size={self.batch_size}" if self.batch_size is not None else ""
        name = "?" if self.objective is None else (
            getattr(self.objective, "__name__", None) or type(self.objective).__name__
        )
        return (
            f"FitResult({type(self.distribution).__name__}, num_steps={self.num_steps}{batch}, "
            f"objective={name}, final_loss={np.round(self.final_loss, 6)}, "
            f"khat={np.round(self.khat, 3)}, ess={np.round(self.ess, 1)})"
        )

    def summary(self) -> str:
        """A one-screen text report: loss trace, convergence, k-hat, ESS and warnings.

        Reading it computes the diagnostics if they were not yet (``num_diagnostic_samples``
        draws). Batched results summarize each member's k-hat and the best member.
        """
        return _summary_text(self)

    def _repr_html_(self) -> str:
        """Notebook representation: :meth:`summary` as preformatted HTML."""
        import html

        return f"<pre style='line-height:1.25'>{html.escape(self.summary())}</pre>"

    # ---------------------------------------------------------------- files
    def save(self, path) -> None:
        """Writes the result to ``path`` (a ``.npz`` archive with JSON metadata; no pickle).

        Everything round-trips exactly (arrays bit for bit) except the
        optimizer and a user-function objective, which are code: the default
        Adam and the built-in objectives are recorded by value; otherwise
        pass ``optimizer=`` / ``objective=`` again to continue a loaded fit.
        The format is described in :mod:`vikl._persistence`.

        The write is atomic: the archive goes to a temporary file in the same
        directory, is flushed to disk (``fsync``) and then renamed over
        ``path`` (``os.replace``). A write that fails midway (disk full, a
        file-size limit, an interrupt) leaves any previous file at ``path``
        intact and removes the temporary file. A ``path`` that is a symbolic
        link has its target replaced.

        Raises:
          TypeError: the distribution holds a value that cannot be stored.
          OSError: the file cannot be written (the previous one is kept).
        """
        _persistence.save(self, path)

    @classmethod
    def load(cls, path, *, families: Optional[dict] = None) -> "FitResult":
        """Reads a result written by :meth:`save`.

        The file is untrusted input: its structure is checked entry by entry
        and every distribution it holds passes the checks its constructor
        runs (a negative scale is refused), so a damaged, truncated or foreign
        file raises ``ValueError`` and never loads half-valid.

        Args:
          path: the file (a path, or a binary file object opened for reading).
          families: optional ``{"ClassName": cls}`` for user-defined
            distribution classes that are not importable by module path.

        Raises:
          ValueError: not a vikl FitResult file, damaged or truncated, a newer
            format version, a class the file names is not available, or
            values its distribution rejects; the message names ``path`` and
            what is wrong.
          OSError: the file cannot be opened (e.g. ``FileNotFoundError``).
        """
        return cls(**_persistence.load_fields(path, families))


# ----------------------------------------------------------------------------- summary
_BARS = "▁▂▃▄▅▆▇█"


def _sparkline(losses, width=40) -> str:
    """The loss trace in ``width`` block characters (bin means; the top 10% of values clipped)."""
    x = np.asarray(losses, np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return ""
    bins = np.array_split(x, min(width, x.size))
    m = np.array([b.mean() for b in bins])
    lo, hi = float(m.min()), float(np.quantile(m, 0.9))
    if not hi > lo:
        return _BARS[0] * m.size
    level = np.clip((m - lo) / (hi - lo), 0.0, 1.0)
    return "".join(_BARS[int(round(v * (len(_BARS) - 1)))] for v in level)


def _num(x, fmt):
    a = np.asarray(x, np.float64)
    if a.ndim == 0:
        return format(float(a), fmt)
    return "[" + ", ".join(format(float(v), fmt) for v in a.ravel()) + "]"


def _khat_words(k) -> str:
    k = float(np.max(np.asarray(k, np.float64)))
    if not np.isfinite(k):
        return "unavailable"
    return "good" if k < 0.5 else ("usable with care" if k < 0.7 else "unreliable: q misses mass")


def _num_clipped(opt_state) -> int:
    """Gradients clipped by a :func:`vikl.clip_gradient_spikes` in ``opt_state`` (summed over
    batch members; 0 for none, or for a state loaded from a file as bare leaves)."""

    def is_clip(x):
        return isinstance(x, ClipGradientSpikesState)

    found = [x for x in jax.tree_util.tree_leaves(opt_state, is_leaf=is_clip) if is_clip(x)]
    return int(sum(np.sum(np.asarray(x.num_clipped)) for x in found))


def _summary_text(res) -> str:
    """The text of :meth:`FitResult.summary`."""
    name = "?" if res.objective is None else (
        getattr(res.objective, "__name__", None) or type(res.objective).__name__)
    batch = f" x {res.batch_size} fits" if res.batch_size is not None else ""
    lines = [f"vikl.FitResult: {type(res.distribution).__name__}{batch}, {res.num_steps} steps, "
             f"objective {name}, {res.wall_time:.2g} s"]
    if res.init is not None:
        lines.append(f"init:        {res.init}")
    losses = np.asarray(res.losses)
    if losses.shape[-1]:
        best = res.best_index if res.batch_size is not None else None
        trace = losses[best] if best is not None else losses
        lines.append(f"loss:        {trace[0]:.5g} -> {_num(res.final_loss, '.5g')} "
                     f"(mean of the last 10% of steps{', per member' if best is not None else ''})")
        lines.append(f"             {_sparkline(trace)}"
                     + (f"  (member {best}, the best)" if best is not None else ""))
    if res.converged is None:
        lines.append("stopping:    fixed num_steps (no stopping rule); last iterate returned")
    else:
        state = f"converged at step {res.converged_at}" if res.converged else "NOT converged"
        lines.append(f"stopping:    {state}")
        lines.append(f"             {res.convergence}")
        lines.append(f"returned q:  average of the last {res.averaged_over} iterates "
                     "(unconstrained parameters)")
    clipped = _num_clipped(res.opt_state)
    if clipped:
        lines.append(f"gradients:   {clipped} clipped as spikes (vikl.clip_gradient_spikes: "
                     "heavy-tailed Monte-Carlo gradients)")
    d = res.diagnostics
    lines.append(f"k-hat:       {_num(d.khat, '.3f')} ({_khat_words(d.khat)}; < 0.5 good, > 0.7 "
                 "unreliable)")
    lines.append(f"ESS:         {_num(d.ess, '.1f')} of {d.num_samples} importance draws")
    if res.warnings:
        lines.append(f"warnings:    {len(res.warnings)}")
        lines.extend(f"  - {w}" for w in res.warnings)
    else:
        lines.append("warnings:    none")
    return "\n".join(lines)
