"""The result of :func:`vikl.fit`: :class:`FitResult`, its file format, and optimizer defaults.

File format (``FitResult.save``): one ``.npz`` archive written and read
without pickle. Arrays are stored as ``npz`` entries; the structure (the
distribution's class and static fields, pytree layout, objective, optimizer,
diagnostics) is a JSON document in the entry ``__vikl_metadata__`` with
``{"format": "vikl.FitResult", "version": 1, ...}``. Loading refuses other
formats and newer versions, and resolves classes only among modules that are
already imported (it never imports or executes code named by the file).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import stat
import sys
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vikl._base import Distribution, is_concrete
from vikl._diagnostics import ISDiagnostics

__all__ = ["FitResult", "FitDivergedError", "default_optimizer", "resolve_optimizer"]

FORMAT = "vikl.FitResult"
FORMAT_VERSION = 1
_META = "__vikl_metadata__"
DEFAULT_LEARNING_RATE = 1e-2


# ----------------------------------------------------------------------------- errors
class FitDivergedError(FloatingPointError):
    """Raised by :func:`vikl.fit` when the loss becomes NaN or infinite.

    Attributes:
      step: index of the first non-finite step (counting continued steps).
      value: the non-finite loss.
      last_finite_loss: the last finite loss before it (``None`` if none).
      losses: the loss history of the diverged run up to ``step`` (NumPy).
      member: index of the diverged member in a batched fit, else ``None``.
    """

    def __init__(self, step, value, last_finite_loss, losses, member=None):
        self.step = step
        self.value = value
        self.last_finite_loss = last_finite_loss
        self.losses = losses
        self.member = member
        where = f" (batch member {member})" if member is not None else ""
        last = (
            f"the last finite loss was {last_finite_loss:.6g} at step {step - 1}"
            if last_finite_loss is not None and step > 0
            else "no finite loss was seen before it"
        )
        super().__init__(
            f"fit diverged: the loss is {value} at step {step}{where}; {last}. Lower the "
            "learning rate, start q0 closer to the target (e.g. a smaller scale), check that the "
            "target's log density is finite on q's support, or use more samples."
        )


# ----------------------------------------------------------------------------- optimizers
_ADAMS: dict = {}


def default_optimizer(learning_rate: float = DEFAULT_LEARNING_RATE):
    """``optax.adam(learning_rate)``, created once per learning rate (so compiles are shared)."""
    lr = float(learning_rate)
    if lr not in _ADAMS:
        _ADAMS[lr] = optax.adam(lr)
    return _ADAMS[lr]


_SCHEDULED: dict = {}


def _real_scalar(x):
    """``x`` as a float if it is a real number (Python, NumPy or a 0-d concrete array), else None."""
    if isinstance(x, (bool, np.bool_)) or not (isinstance(x, (int, float, np.number))
                                               or (isinstance(x, (np.ndarray, jax.Array)) and x.ndim == 0)):
        return None
    if not (np.issubdtype(np.asarray(x).dtype, np.integer) or np.issubdtype(np.asarray(x).dtype, np.floating)):
        return None
    return float(x)


def resolve_optimizer(optimizer):
    """``None`` -> Adam(1e-2); float -> Adam(lr); schedule -> Adam(schedule); optax object as is."""
    if optimizer is None:
        return default_optimizer()
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer
    lr = _real_scalar(optimizer)
    if lr is not None:
        if not 0 < lr < float("inf"):
            raise ValueError(f"fit: a learning rate must be finite and > 0; got {optimizer!r}")
        return default_optimizer(lr)
    if callable(optimizer):
        if optimizer not in _SCHEDULED:
            try:  # a schedule maps a step count to a learning rate
                ok = _real_scalar(optimizer(0)) is not None
            except Exception:  # noqa: BLE001 - any failure means "not a schedule"
                ok = False
            if not ok:
                raise TypeError(
                    f"fit: optimizer {optimizer!r} is callable but not a schedule (calling it with "
                    "the step count 0 must return a number); pass an optax GradientTransformation "
                    "(e.g. optax.adam(1e-3)), a learning rate or an optax schedule")
            _SCHEDULED[optimizer] = optax.adam(optimizer)
        return _SCHEDULED[optimizer]
    raise TypeError(
        "fit: optimizer must be an optax GradientTransformation, a learning rate, an optax "
        f"schedule or None; got {type(optimizer).__name__}"
    )


def _describe_optimizer(opt):
    for lr, o in _ADAMS.items():
        if o is opt:
            return {"adam": lr}
    return {"custom": repr(opt)[:200]}


# ----------------------------------------------------------------------------- encoding
class _Unencodable(TypeError):
    pass


def _class_path(cls):
    return f"{cls.__module__}:{cls.__qualname__}"


def _encode(obj, arrays):
    """Pytree -> JSON-able structure; arrays go to ``arrays`` (name -> numpy)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, jax.Array) and jax.dtypes.issubdtype(obj.dtype, jax.dtypes.prng_key):
        name = f"a{len(arrays)}"
        arrays[name] = np.asarray(jax.random.key_data(obj))
        return {"key": name, "impl": str(jax.random.key_impl(obj))}
    if isinstance(obj, (jax.Array, np.ndarray, np.generic)):
        name = f"a{len(arrays)}"
        arrays[name] = np.asarray(obj)
        return {"array": name, "jax": isinstance(obj, jax.Array)}
    if isinstance(obj, Distribution):
        cls = type(obj)
        fields = {n: _encode(getattr(obj, n), arrays) for n in cls._child_fields + cls._static_fields}
        return {"distribution": _class_path(cls), "fields": fields}
    if isinstance(obj, tuple) and hasattr(type(obj), "_fields"):
        return {"namedtuple": _class_path(type(obj)), "fields": [_encode(v, arrays) for v in obj]}
    if isinstance(obj, (list, tuple)):
        return {type(obj).__name__: [_encode(v, arrays) for v in obj]}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise _Unencodable("dict keys must be strings")
        return {"dict": {k: _encode(v, arrays) for k, v in obj.items()}}
    raise _Unencodable(f"cannot store a {type(obj).__name__}")


class _Malformed(ValueError):
    """A damaged or foreign file; :meth:`FitResult.load` adds the path."""


def _resolve_class(path, families, kind):
    if not isinstance(path, str):
        raise _Malformed(f"a {kind} class path must be a string; got {type(path).__name__}")
    if families:
        for key in (path, path.split(":")[-1]):
            if key in families:
                return families[key]
    module, _, qualname = path.partition(":")
    obj = sys.modules.get(module)
    if obj is not None and "<locals>" not in qualname:
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
    if obj is None or not isinstance(obj, type):
        raise _Malformed(
            f"the file names the {kind} class {path!r}, which is not available. "
            f"Import the module that defines it before loading, or pass "
            f"families={{'{qualname}': TheClass}}."
        )
    return obj


def _node(node, key, kind):
    """``node[key]`` of a JSON object, checked to be of type ``kind``."""
    if not isinstance(node, dict) or key not in node:
        raise _Malformed(f"expected an object with a {key!r} entry; got {str(node)[:80]}")
    value = node[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise _Malformed(f"the {key!r} entry must be a {names}; got {str(value)[:80]}")
    return value


def _array(arrays, name):
    if not isinstance(name, str) or name not in arrays:
        raise _Malformed(f"the array entry {str(name)[:80]} is missing")
    return arrays[name]


def _decode_array(node, arrays):
    a = _array(arrays, node["array"])
    if not node.get("jax", True):
        return a
    if a.dtype.kind not in "biufc":
        raise _Malformed(f"the array {node['array']!r} has dtype {a.dtype}; expected numbers")
    if a.dtype.itemsize == 8 and a.dtype.kind in "fiuc" and not jax.config.jax_enable_x64:
        raise _Malformed(
            f"the file holds {a.dtype} arrays; enable 64-bit JAX "
            "(jax.config.update('jax_enable_x64', True)) to load it exactly"
        )
    return jnp.asarray(a)


def _decode_distribution(node, arrays, families):
    cls = _resolve_class(node["distribution"], families, "distribution")
    if not issubclass(cls, Distribution):
        raise _Malformed(f"{node['distribution']!r} is not a vikl Distribution")
    fields = _node(node, "fields", dict)
    expected = set(cls._child_fields + cls._static_fields)
    if set(fields) != expected:
        raise _Malformed(
            f"the {cls.__name__} entry has fields {sorted(fields)}; {cls.__name__} has {sorted(expected)}"
        )
    obj = object.__new__(cls)
    for name, value in fields.items():
        v = _decode(value, arrays, families)
        object.__setattr__(obj, name, tuple(v) if isinstance(v, list) and name in cls._static_fields else v)
    _check_distribution(obj)
    return obj


def _check_distribution(obj):
    """The checks a constructor runs, on a distribution rebuilt field by field."""
    cls = type(obj)
    name = cls.__name__
    batches = set()
    for k, c in cls._param_constraints.items():
        v = getattr(obj, k)
        if v is None:
            continue
        if not isinstance(v, jax.Array) or not jnp.issubdtype(v.dtype, jnp.floating):
            raise _Malformed(f"{name}.{k} must be a floating JAX array; got {type(v).__name__} "
                             f"of dtype {getattr(v, 'dtype', None)}")
        if v.ndim < c.event_dim:
            raise _Malformed(f"{name}.{k} must have at least {c.event_dim} dimension(s); got shape {v.shape}")
        batches.add(v.shape[: v.ndim - c.event_dim])
        ok = np.asarray(c.check(v))
        if not ok.all():
            raise _Malformed(f"{name}.{k} must be {c.description}; got {c.describe_violation(v)}")
    if len(batches) > 1:
        raise _Malformed(f"{name}'s parameters have different batch shapes {sorted(batches)}")
    try:
        obj._check_shapes()
        if is_concrete(obj):
            obj._check_args()
    except Exception as err:  # a family's own checks, on values no constructor saw
        raise _Malformed(f"invalid {name}: {err}") from err


def _decode(node, arrays, families):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if not isinstance(node, dict) or len(node) == 0:
        raise _Malformed(f"unexpected entry {str(node)[:80]} in the file")
    if "array" in node:
        return _decode_array(node, arrays)
    if "key" in node:
        data = jnp.asarray(_array(arrays, node["key"]))
        return jax.random.wrap_key_data(data, impl=_node(node, "impl", str))
    if "distribution" in node:
        return _decode_distribution(node, arrays, families)
    if "namedtuple" in node:
        cls = _resolve_class(node["namedtuple"], families, "optimizer-state")
        if not (issubclass(cls, tuple) and hasattr(cls, "_fields")):
            raise _Malformed(f"{node['namedtuple']!r} is not a NamedTuple")
        values = _node(node, "fields", list)
        if len(values) != len(cls._fields):
            raise _Malformed(f"{cls.__name__} has {len(cls._fields)} fields; the file gives {len(values)}")
        return cls(*(_decode(v, arrays, families) for v in values))
    if "list" in node:
        return [_decode(v, arrays, families) for v in _node(node, "list", list)]
    if "tuple" in node:
        return tuple(_decode(v, arrays, families) for v in _node(node, "tuple", list))
    if "dict" in node:
        return {k: _decode(v, arrays, families) for k, v in _node(node, "dict", dict).items()}
    raise _Malformed(f"unknown node {sorted(node)} in the file")


class _OptLeaves(tuple):
    """Optimizer-state leaves whose structure could not be stored; rebuilt on continuation."""


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
            params=take(self.params),
            losses=self.losses[i],
            opt_state=_OptLeaves(x[i] for x in self.opt_state)
            if isinstance(self.opt_state, _OptLeaves) else take(self.opt_state),
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

    # ---------------------------------------------------------------- continuation
    def resolve_optimizer(self, optimizer):
        """The optimizer for continuing: the given one, else this result's."""
        if optimizer is not None:
            return resolve_optimizer(optimizer)
        if self.optimizer is None:
            raise ValueError(
                "fit: this FitResult was loaded from a file and used a custom optimizer, which "
                "cannot be stored; pass optimizer= (the same one) to continue"
            )
        return self.optimizer

    def restore_opt_state(self, optimizer):
        """This result's optimizer state, checked against ``optimizer``'s structure."""
        init = optimizer.init if self.batch_size is None else jax.vmap(optimizer.init)
        with jax.numpy_dtype_promotion("standard"):
            want = jax.eval_shape(init, self.params)
        want_leaves, treedef = jax.tree_util.tree_flatten(want)
        have = list(self.opt_state) if isinstance(self.opt_state, _OptLeaves) \
            else jax.tree_util.tree_leaves(self.opt_state)
        same = len(have) == len(want_leaves) and all(
            tuple(np.shape(h)) == tuple(w.shape) for h, w in zip(have, want_leaves)
        )
        if not isinstance(self.opt_state, _OptLeaves):
            same = same and jax.tree_util.tree_structure(self.opt_state) == treedef
        if not same:
            raise ValueError(
                "fit: the optimizer's state does not match this FitResult's (a different optax "
                "chain?). Continue with the same optimizer, or restart the optimizer with "
                "fit(result.distribution, ...)."
            )
        return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(h) for h in have])

    # ---------------------------------------------------------------- files
    def save(self, path) -> None:
        """Writes the result to ``path`` (a ``.npz`` archive with JSON metadata; no pickle).

        Everything round-trips exactly (arrays bit for bit) except the
        optimizer and a user-function objective, which are code: the default
        Adam and the built-in objectives are recorded by value; otherwise
        pass ``optimizer=`` / ``objective=`` again to continue a loaded fit.

        The write is atomic: the archive goes to a temporary file in the same
        directory, is flushed to disk (``fsync``) and then renamed over
        ``path`` (``os.replace``). A write that fails midway (disk full, a
        file-size limit, an interrupt) leaves any previous file at ``path``
        intact and removes the temporary file. A ``path`` that is a symbolic
        link has its target replaced.
        """
        arrays: dict = {}
        try:
            opt_state = _encode(self.opt_state, arrays)
        except _Unencodable:
            opt_state = {"leaves": [_encode(x, arrays) for x in jax.tree_util.tree_leaves(self.opt_state)]}
        if isinstance(self.opt_state, _OptLeaves):
            opt_state = {"leaves": [_encode(x, arrays) for x in self.opt_state]}
        try:
            distribution = _encode(self.distribution, arrays)
            params = _encode(self.params, arrays)
        except _Unencodable as err:
            raise TypeError(f"FitResult.save: the distribution holds a value that cannot be stored ({err})") from None
        arrays["losses"] = np.asarray(self.losses)
        for k, v in self.trace.items():
            arrays[f"trace/{k}"] = np.asarray(v)
        d = self.diagnostics
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "num_steps": int(self.num_steps),
            "batch_size": self.batch_size,
            "wall_time": float(self.wall_time),
            "distribution": distribution,
            "params": params,
            "opt_state": opt_state,
            "key": _encode(self.key, arrays),
            "objective": _describe_objective(self.objective),
            "optimizer": _describe_optimizer(self.optimizer),
            "diagnostics": _encode({"khat": d.khat, "ess": d.ess, "num_samples": d.num_samples}, arrays),
            "trace": sorted(self.trace),
        }
        arrays[_META] = np.array(json.dumps(meta))
        _write_atomically(path, lambda f: np.savez(f, **arrays))

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
        # A missing or unreadable file raises OSError as usual; an open binary file is read as is.
        with (contextlib.nullcontext(path) if hasattr(path, "read") else open(path, "rb")) as f:
            try:
                arrays = _read_archive(f)
                fields = _fields_from(arrays, families)
            except _Malformed as err:
                raise ValueError(f"FitResult.load: {path}: {err}") from err
            except Exception as err:  # any decoding failure, RecursionError included
                if isinstance(err, MemoryError):
                    raise
                raise ValueError(
                    f"FitResult.load: {path} is damaged or not a vikl FitResult file "
                    f"({type(err).__name__}: {str(err)[:200]})"
                ) from err
        return cls(**fields)


def _write_atomically(path, write):
    """Runs ``write(f)`` on a temporary file beside ``path``, fsyncs it, renames it to ``path``."""
    target = os.path.realpath(os.fspath(path))
    folder, name = os.path.split(target)
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never follow or reuse an existing name; 0o666 lets the umask apply, as open() does.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(target):  # keep the permissions of the file being replaced
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(folder)


def _fsync_directory(folder):
    """Makes the rename durable where the OS allows it (POSIX; a no-op elsewhere)."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_archive(f):
    """Every entry of the ``.npz`` archive in ``f`` (no pickle), as NumPy arrays."""
    z = np.load(f, allow_pickle=False)
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise _Malformed("not a vikl FitResult file (not an .npz archive)")
    with z:
        arrays = {k: z[k] for k in z.files}
    if _META not in arrays:
        raise _Malformed("not a vikl FitResult file (no metadata entry)")
    return arrays


def _read_meta(arrays):
    raw = arrays[_META]
    if raw.shape != () or raw.dtype.kind != "U":
        raise _Malformed(f"the metadata entry must be one string; got {raw.dtype} of shape {raw.shape}")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as err:
        raise _Malformed(f"unreadable metadata ({err})") from None
    if not isinstance(meta, dict):
        raise _Malformed(f"the metadata must be a JSON object; got {type(meta).__name__}")
    fmt, version = meta.get("format"), meta.get("version")
    if fmt != FORMAT:
        raise _Malformed(f"has format {str(fmt)[:80]!r}; expected {FORMAT!r}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _Malformed(f"has an unknown format version {str(version)[:80]!r}")
    if version > FORMAT_VERSION:
        raise _Malformed(
            f"was written in format version {version}, newer than this vikl reads "
            f"(<= {FORMAT_VERSION}); upgrade vikl to load it"
        )
    return meta


def _fields_from(arrays, families) -> dict:
    """``FitResult``'s fields from a file's arrays, every entry checked."""
    meta = _read_meta(arrays)

    def dec(node):
        return _decode(node, arrays, families)

    opt_node = _node(meta, "opt_state", (dict, type(None)))
    if isinstance(opt_node, dict) and set(opt_node) == {"leaves"}:
        opt_state = _OptLeaves(dec(v) for v in _node(opt_node, "leaves", list))
    else:
        opt_state = dec(opt_node)
    batch_size = _node(meta, "batch_size", (int, type(None)))
    num_steps = _node(meta, "num_steps", int)
    losses = _array(arrays, "losses")
    want_ndim = 1 if batch_size is None else 2
    if (isinstance(batch_size, bool) or (batch_size is not None and batch_size < 1) or num_steps < 0
            or losses.dtype.kind != "f" or losses.ndim != want_ndim or losses.shape[-1] != num_steps
            or (batch_size is not None and losses.shape[0] != batch_size)):
        raise _Malformed(
            f"inconsistent sizes: num_steps={num_steps}, batch_size={batch_size}, losses of dtype "
            f"{losses.dtype} and shape {losses.shape}"
        )
    distribution = _node(meta, "distribution", dict)
    if "distribution" not in distribution:
        raise _Malformed("the fitted distribution entry does not hold a distribution")
    trace = _node(meta, "trace", list)
    return {
        "distribution": dec(distribution),
        "params": dec(_node(meta, "params", (dict, list, type(None)))),
        "losses": losses,
        "opt_state": opt_state,
        "key": dec(_node(meta, "key", dict)),
        "num_steps": num_steps,
        "objective": _objective_from(_node(meta, "objective", dict)),
        "optimizer": _optimizer_from(_node(meta, "optimizer", dict)),
        "_diagnostics": _diagnostics_from(dec(_node(meta, "diagnostics", dict))),
        "trace": {k: _array(arrays, f"trace/{k}") for k in trace},
        "batch_size": batch_size,
        "wall_time": float(_node(meta, "wall_time", (int, float))),
    }


def _diagnostics_from(diag):
    if not isinstance(diag, dict) or set(diag) != {"khat", "ess", "num_samples"}:
        raise _Malformed(f"the diagnostics entry must hold khat, ess and num_samples; got {str(diag)[:80]}")
    n = diag["num_samples"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise _Malformed(f"diagnostics num_samples must be an integer >= 0; got {n!r}")
    for k in ("khat", "ess"):
        if not isinstance(diag[k], (float, int, np.ndarray)) or isinstance(diag[k], bool):
            raise _Malformed(f"diagnostics {k} must be a number or an array; got {type(diag[k]).__name__}")
    return ISDiagnostics(diag["khat"], diag["ess"], n)


def _optimizer_from(desc):
    if "adam" not in desc:
        return None
    lr = desc["adam"]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
        raise _Malformed(f"the optimizer's learning rate must be a finite number > 0; got {str(lr)[:80]}")
    return default_optimizer(lr)


def _describe_objective(objective):
    from vikl import objectives

    if isinstance(objective, objectives.Objective) and type(objective).__module__ == objectives.__name__:
        return {"class": type(objective).__name__, "fields": dataclasses.asdict(objective)}
    return {"function": getattr(objective, "__qualname__", type(objective).__qualname__)}


def _objective_from(desc):
    from vikl import objectives

    if "class" in desc:
        cls = getattr(objectives, str(desc["class"]), None)
        if not (isinstance(cls, type) and issubclass(cls, objectives.Objective)):
            raise _Malformed(f"unknown objective class {str(desc['class'])[:80]!r}")
        try:
            return cls(**_node(desc, "fields", dict))
        except (TypeError, ValueError) as err:
            raise _Malformed(f"invalid objective {cls.__name__}: {err}") from err
    return None
