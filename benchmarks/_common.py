"""Timing and reporting helpers shared by the benchmark scripts."""

from __future__ import annotations

import os

# One BLAS thread: LAPACK threads collapse when another process holds a core.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from importlib import metadata  # noqa: E402

REPEATS = 5
WARMUP = 3


def block(x):
    """Waits for JAX arrays (and pytrees of them) and for CUDA torch tensors; passes anything else through."""
    dev = getattr(x, "device", None)
    if getattr(dev, "type", None) == "cuda":  # a torch tensor on a GPU: wait for its stream
        import torch

        torch.cuda.synchronize(dev)
        return x
    try:
        import jax

        return jax.block_until_ready(x)
    except (ImportError, TypeError):
        return x


class Timing(tuple):
    """``(first, median, out)`` as :func:`timed` returns it, plus ``best``, the fastest timed call."""

    best: float


def timed(fn, repeats: int = REPEATS, warmup: int = WARMUP):
    """(first-call seconds, median seconds of ``repeats`` further calls, last result).

    The result is a :class:`Timing`; its ``best`` attribute is the fastest timed call,
    which on a shared 2-core machine is the steadier number for millisecond kernels.

    The first call includes tracing and compilation for jitted functions. It is
    followed by ``warmup`` untimed calls, so that the row timed first does not
    pay alone for one-time costs left after compilation (such as first use of
    fresh buffers and of the thread pool).
    BENCH_PROBLEMS.md's protocol (median of 5 after one cold call) is otherwise kept.
    """
    t0 = time.perf_counter()
    out = block(fn())
    first = time.perf_counter() - t0
    for _ in range(warmup):
        out = block(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = block(fn())
        times.append(time.perf_counter() - t0)
    result = Timing((first, statistics.median(times), out))
    result.best = min(times)
    return result


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(pkg):
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "-"


def machine_line() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    pkgs = ", ".join(f"{p} {_version(p)}" for p in ("jax", "numpyro", "blackjax", "torch", "numpy", "scipy"))
    try:
        import jax

        dev = jax.devices()[0]
        jax_dev = f"JAX device {dev.platform}: {getattr(dev, 'device_kind', '?')}"
    except Exception:  # pragma: no cover
        jax_dev = "JAX device unknown"
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; {jax_dev}; {pkgs}"
    )


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def fmt(x, digits=3) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"
