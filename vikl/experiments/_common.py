"""Shared plumbing of the experiment scripts: arguments, output files, progress.

Every experiment module defines ``NAME``, a module docstring (its ``--help``)
and ``run(ctx) -> dict``; its ``main(argv)`` is ``_common.main(NAME, __doc__,
run, argv)``. ``run`` draws keys from ``ctx.key``, saves figures with
``ctx.savefig`` and returns the numbers its figures show; ``main`` writes them
to ``<out>/<NAME>.json`` with the run's settings, so that one seed always gives
the same files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Callable

import numpy as np

__all__ = ["Context", "main", "to_jsonable", "bits"]

LN2 = math.log(2.0)


def bits(nats):
    """Converts nats to bits (divides by ln 2); works on floats and arrays."""
    return nats / LN2


def command_prefix() -> str:
    """``python -m experiments`` when started through a clone's alias, else ``python -m vikl.experiments``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    started_as = (getattr(spec, "name", None) or "").split(".")[0]
    return "python -m experiments" if started_as == "experiments" else "python -m vikl.experiments"


def build_parser(name: str, doc: str) -> argparse.ArgumentParser:
    """The command-line interface every experiment shares."""
    lines = (doc or name).strip().splitlines()
    parser = argparse.ArgumentParser(
        prog=f"{command_prefix()}.{name}",
        description=lines[0],
        epilog="\n".join(lines[1:]).strip() or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default=os.path.join("out", name),
                        help=f"output directory for figures and JSON (default: out/{name})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--quick", action="store_true",
                        help="few steps and samples: a smoke test in seconds, not a result")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="hide progress bars of long fits")
    parser.add_argument("--formats", default="png,pdf",
                        help="comma-separated figure formats (default: png,pdf; svg also works)")
    return parser


def to_jsonable(obj):
    """Converts JAX/NumPy arrays and scalars (nested in dicts/lists) to JSON values.

    Non-finite floats become the strings ``"inf"``, ``"-inf"`` and ``"nan"``
    (strict JSON has no such numbers).
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (str, bool)) or obj is None:
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if hasattr(obj, "__array__") or isinstance(obj, (float, np.floating)):
        arr = np.asarray(obj)
        if arr.dtype == np.bool_:
            return arr.tolist()
        if np.issubdtype(arr.dtype, np.integer):
            return arr.tolist()
        if arr.ndim == 0:
            return _float(float(arr))
        return [to_jsonable(v) for v in arr.astype(np.float64)]
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def _float(x: float):
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(f"{x:.12g}")  # drop binary noise such as 0.15000000000000002


class Context:
    """What an experiment's ``run`` receives: settings, keys, output helpers."""

    def __init__(self, name: str, args: argparse.Namespace):
        import jax

        self.name = name
        self.args = args
        self.quick = bool(args.quick)
        self.seed = int(args.seed)
        self.progress = bool(args.progress)
        self.out = args.out
        self.formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
        self.figures: list[str] = []
        self._key = jax.random.PRNGKey(self.seed)
        os.makedirs(self.out, exist_ok=True)

    def pick(self, full, quick):
        """``quick`` under ``--quick``, else ``full`` (step counts, sample sizes)."""
        return quick if self.quick else full

    def fit_options(self) -> dict:
        """Keyword arguments for ``vikl.fit``: the progress flag and, under ``--quick``,
        no importance-sampling diagnostics (one compiled program less per fit)."""
        options = {"progress": self.progress}
        if self.quick:
            options["num_diagnostic_samples"] = 0
        return options

    def key(self):
        """A fresh PRNG key, split off the run's seed key (never reused)."""
        import jax

        self._key, sub = jax.random.split(self._key)
        return sub

    def log(self, message: str):
        """Prints a progress line, prefixed by the experiment name, to stderr."""
        print(f"[{self.name}] {message}", file=sys.stderr, flush=True)

    def savefig(self, fig, stem: str) -> list[str]:
        """Saves ``fig`` as ``<out>/<stem>.<fmt>`` in every requested format."""
        from vikl import plotting

        paths = plotting.save(fig, os.path.join(self.out, stem), self.formats)
        self.figures.extend(os.path.basename(p) for p in paths)
        return paths


def main(name: str, doc: str, run: Callable[[Context], dict], argv=None) -> dict:
    """Parses ``argv``, runs the experiment, writes ``<out>/<name>.json``; returns its dict."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    args = build_parser(name, doc).parse_args(argv)
    ctx = Context(name, args)
    t0 = time.perf_counter()
    from vikl import plotting

    with plotting.style():
        results = run(ctx)
    record = {
        "experiment": name,
        "command": f"{command_prefix()}.{name}" + (" --quick" if ctx.quick else "")
        + (f" --seed {ctx.seed}" if ctx.seed else ""),
        "seed": ctx.seed,
        "quick": ctx.quick,
        "figures": sorted(ctx.figures),
        **results,
    }
    record = to_jsonable(record)
    path = os.path.join(ctx.out, f"{name}.json")
    with open(path, "w") as f:
        json.dump(record, f, indent=2, allow_nan=False)
        f.write("\n")
    elapsed = time.perf_counter() - t0
    print(f"[{name}] wrote {path} and {len(ctx.figures)} figure files in {ctx.out} "
          f"({elapsed:.1f} s)", flush=True)
    return record
