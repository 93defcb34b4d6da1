"""The file format of :class:`vikl.FitResult`: ``FitResult.save`` and ``FitResult.load``.

One ``.npz`` archive written and read without pickle. Arrays are stored as
``npz`` entries; the structure (the distribution's class and static fields,
pytree layout, objective, optimizer, diagnostics) is a JSON document in the
entry ``__vikl_metadata__`` with ``{"format": "vikl.FitResult", "version": 1,
...}`` (version 2 adds a layout, version 3 the fields of a run until
converged, version 4 the row-scale times unit-lower map of ``lower_cholesky``
parameters; each result is written in the lowest version that holds it, and
older versions load with the new fields at their defaults). Loading refuses
other formats and newer versions, and resolves
classes only among modules that are already imported (it never imports or
executes code named by the file). The file is untrusted input: every entry is
checked and every distribution passes its constructor's checks. Writes are
atomic (a temporary file beside the target, ``fsync``, ``os.replace``).

:func:`save` takes a FitResult and :func:`load_fields` returns the keyword
arguments of one, so this module does not import the record's class.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import stat
import sys

import jax
import jax.numpy as jnp
import numpy as np

from vikl import _constraints
from vikl._base import Distribution, Module, is_concrete
from vikl._diagnostics import ISDiagnostics
from vikl._optimizers import OptLeaves, default_optimizer, describe_optimizer, preconditioned_adam
from vikl._params import _is_module_seq
from vikl._unconstrained import push_forward
from vikl.bijectors._registry import bijector_for

__all__ = ["save", "load_fields"]

FORMAT = "vikl.FitResult"
# 2: a result with a layout (a constrained fit); 3: a result of a run until converged, an
# initializer or trust warnings (fields converged, converged_at, convergence, averaged_over,
# init, warnings); others are still written as 1. Versions 1 and 2 still load (new fields at
# their defaults). 4: a result whose q has a ``lower_cholesky`` parameter (MultivariateNormal,
# AffineTriL), trained since format 4 as diag(exp(diag u)) (I + tril(u, -1)) instead of
# tril(u, -1) + diag(exp(diag u)). Such results of formats 1-3 load with their unconstrained
# parameters converted to the new map (exactly the same q) and without an optimizer state
# (Adam's moments were in the old coordinates): continuing them restarts the optimizer.
FORMAT_VERSION = 4
_CONVERGE_FIELDS = ("converged", "converged_at", "convergence", "averaged_over", "init", "warnings")
_META = "__vikl_metadata__"


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
    if isinstance(obj, Module):  # a Distribution, or another vikl Module (a bijector, a layout)
        cls = type(obj)
        fields = {n: _encode(getattr(obj, n), arrays) for n in cls._child_fields + cls._static_fields}
        return {"distribution" if isinstance(obj, Distribution) else "module": _class_path(cls),
                "fields": fields}
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
    """A damaged or foreign file; :func:`load_fields` adds the path."""


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


def _decode_distribution(node, arrays, families, kind="distribution"):
    """A Distribution (``kind="distribution"``) or another vikl Module (``"module"``), checked."""
    base = Distribution if kind == "distribution" else Module
    cls = _resolve_class(node[kind], families, kind)
    if not issubclass(cls, base) or (kind == "module" and issubclass(cls, Distribution)):
        raise _Malformed(f"{node[kind]!r} is not a vikl {base.__name__}"
                         + (" (other than a Distribution)" if kind == "module" else ""))
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
    if "module" in node:
        return _decode_distribution(node, arrays, families, "module")
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


# ----------------------------------------------------------------------------- save / load
def _encode_opt_state(opt_state, arrays):
    """The optimizer state's node: its pytree, or its bare leaves where the structure cannot be stored."""
    if isinstance(opt_state, OptLeaves):
        leaves = list(opt_state)
    else:
        trial = dict(arrays)  # a failed encoding leaves no orphan arrays behind
        try:
            node = _encode(opt_state, trial)
        except _Unencodable:
            leaves = jax.tree_util.tree_leaves(opt_state)
        else:
            arrays.update(trial)
            return node
    return {"leaves": [_encode(x, arrays) for x in leaves]}


def save(result, path) -> None:
    """Writes ``result`` (a FitResult) to ``path``; see :meth:`vikl.FitResult.save`."""
    arrays: dict = {}
    opt_state = _encode_opt_state(result.opt_state, arrays)
    constrained = result.layout is not None and result._unconstrained is not None
    try:
        # A constrained fit stores q in unconstrained space and the layout; load pushes q forward.
        distribution = _encode(result._unconstrained if constrained else result.distribution, arrays)
        params = _encode(result.params, arrays)
        layout = None if result.layout is None else _encode(result.layout, arrays)
    except _Unencodable as err:
        raise TypeError(f"FitResult.save: the distribution or its layout holds a value that cannot "
                        f"be stored ({err})") from None
    if layout is not None and "module" not in layout and "distribution" not in layout:
        raise TypeError(f"FitResult.save: the layout must be a vikl Module (e.g. a "
                        f"BijectorLayout); got {type(result.layout).__name__}")
    arrays["losses"] = np.asarray(result.losses)
    for k, v in result.trace.items():
        arrays[f"trace/{k}"] = np.asarray(v)
    d = result.diagnostics
    meta = {
        "format": FORMAT,
        "version": 1 if layout is None else 2,
        "num_steps": int(result.num_steps),
        "batch_size": result.batch_size,
        "wall_time": float(result.wall_time),
        "distribution": distribution,
        "params": params,
        "opt_state": opt_state,
        "key": _encode(result.key, arrays),
        "objective": _describe_objective(result.objective),
        "optimizer": describe_optimizer(result.optimizer),
        "diagnostics": _encode({"khat": d.khat, "ess": d.ess, "num_samples": d.num_samples}, arrays),
        "trace": sorted(result.trace),
    }
    if layout is not None:
        meta["layout"] = layout
        meta["constrained"] = constrained
    if (result.converged is not None or result.init is not None or result.warnings
            or result.averaged_over != 1):
        meta["version"] = 3
        meta.update({
            "converged": result.converged, "converged_at": result.converged_at,
            "convergence": result.convergence, "averaged_over": int(result.averaged_over),
            "init": result.init, "warnings": list(result.warnings),
        })
    if _has_lower_cholesky(result._unconstrained if constrained else result.distribution):
        meta["version"] = 4
    arrays[_META] = np.array(json.dumps(meta))
    _write_atomically(path, lambda f: np.savez(f, **arrays))


def _is_lower_cholesky(c) -> bool:
    return isinstance(c, _constraints._LowerCholesky)


def _has_lower_cholesky(dist) -> bool:
    """Whether ``dist`` (or a child distribution or bijector) has a lower_cholesky parameter."""
    if not isinstance(dist, Module):
        return False
    cls = type(dist)
    for name in cls._child_fields:
        value = getattr(dist, name, None)
        c = cls._param_constraints.get(name)
        if c is not None:
            if _is_lower_cholesky(c) and value is not None:
                return True
        elif isinstance(value, Module) and _has_lower_cholesky(value):
            return True
        elif _is_module_seq(value) and any(_has_lower_cholesky(v) for v in value):
            return True
    return False


def _upgrade_cholesky(dist, params):
    """Format <= 3 parameters of ``dist`` in format 4's ``lower_cholesky`` map (same q).

    Formats <= 3 stored ``u`` with ``L = tril(u, -1) + diag(exp(diag u))``; that ``L`` goes
    back through today's parameter map (row scales times a unit-lower factor).
    """
    if not isinstance(dist, Module) or not isinstance(params, dict):
        return params
    out = dict(params)
    constraints = type(dist)._param_constraints
    for name, u in params.items():
        c = constraints.get(name)
        current = getattr(dist, name, None)
        if c is not None:
            if _is_lower_cholesky(c):
                u = jnp.asarray(u)
                eye = jnp.eye(u.shape[-1], dtype=u.dtype)
                old = jnp.tril(u, -1) + jnp.exp(jnp.diagonal(u, axis1=-2, axis2=-1))[..., None] * eye
                out[name] = bijector_for(c, parameter=True).inverse(old)
        elif isinstance(current, Module):
            out[name] = _upgrade_cholesky(current, u)
        elif _is_module_seq(current):
            out[name] = type(u)(_upgrade_cholesky(t, p) for t, p in zip(current, u))
    return out


def load_fields(path, families=None) -> dict:
    """The FitResult fields stored in ``path``; see :meth:`vikl.FitResult.load`."""
    # A missing or unreadable file raises OSError as usual; an open binary file is read as is.
    with (contextlib.nullcontext(path) if hasattr(path, "read") else open(path, "rb")) as f:
        try:
            arrays = _read_archive(f)
            return _fields_from(arrays, families)
        except _Malformed as err:
            raise ValueError(f"FitResult.load: {path}: {err}") from err
        except Exception as err:  # any decoding failure, RecursionError included
            if isinstance(err, MemoryError):
                raise
            raise ValueError(
                f"FitResult.load: {path} is damaged or not a vikl FitResult file "
                f"({type(err).__name__}: {str(err)[:200]})"
            ) from err


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
        opt_state = OptLeaves(dec(v) for v in _node(opt_node, "leaves", list))
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
    distribution = dec(distribution)
    layout, unconstrained = None, None
    if meta["version"] >= 2 and "layout" in meta:
        layout_node = _node(meta, "layout", dict)
        if "module" not in layout_node and "distribution" not in layout_node:
            raise _Malformed("the layout entry does not hold a vikl Module")
        layout = dec(layout_node)
        if _node(meta, "constrained", bool):
            if not hasattr(layout, "constrained_distribution"):
                raise _Malformed(f"the layout {type(layout).__name__} has no constrained_distribution")
            unconstrained = distribution
            distribution = push_forward(layout, distribution, batch_size is not None)
    params = dec(_node(meta, "params", (dict, list, type(None))))
    q = distribution if unconstrained is None else unconstrained
    if meta["version"] < 4 and _has_lower_cholesky(q):
        params, opt_state = _upgrade_cholesky(q, params), None
    return {
        **_converge_fields(meta),
        "layout": layout,
        "_unconstrained": unconstrained,
        "distribution": distribution,
        "params": params,
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


def _converge_fields(meta) -> dict:
    """The fields of a run until converged (format 3), checked; defaults for older files."""
    if meta["version"] < 3 or "converged" not in meta:
        return {}
    out = {
        "converged": _node(meta, "converged", (bool, type(None))),
        "converged_at": _node(meta, "converged_at", (int, type(None))),
        "convergence": _node(meta, "convergence", (str, type(None))),
        "averaged_over": _node(meta, "averaged_over", int),
        "init": _node(meta, "init", (str, type(None))),
        "warnings": tuple(_node(meta, "warnings", list)),
    }
    if out["averaged_over"] < 1 or (out["converged_at"] is not None and out["converged_at"] < 0):
        raise _Malformed(f"averaged_over must be >= 1 and converged_at >= 0; got "
                         f"{out['averaged_over']} and {out['converged_at']}")
    if not all(isinstance(w, str) for w in out["warnings"]):
        raise _Malformed("the warnings entry must be a list of strings")
    return out


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
    name = next((k for k in ("adam", "preconditioned_adam") if k in desc), None)
    if name is None:
        return None
    lr = desc[name]
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
        raise _Malformed(f"the optimizer's learning rate must be a finite number > 0; got {str(lr)[:80]}")
    return default_optimizer(lr) if name == "adam" else preconditioned_adam(lr)


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
