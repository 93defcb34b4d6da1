"""Float32 accuracy of the scalar Gaussian KL kernel over the whole range of scale ratios.

``KL(N(m1, s1²) ‖ N(m2, s2²))`` needs ``f(r) = r² − 1 − log r²`` for ``r = s1/s2``.
This script evaluates, in float32, vikl's kernel (``vikl._math.square_ratio_term``),
the ``x − log1p(x)`` form it replaced, and the textbook ``r² − 1 − log r²``, on
3,000,002 ratios (2,000,001 log-spaced from 1e-30 to 1e18 and 1,000,001 evenly
spaced in [0.5, 2]) at five values of ``s2``, and prints the median and largest
relative error against a float64 reference computed from the same float32
inputs (a series for ``|r − 1| < 1e-3``, ``log1p`` near 1, ``log`` elsewhere).

Run:  python -m benchmarks.normal_kernel_accuracy
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from vikl._math import reciprocal, square_ratio_term, x_minus_log1p

EPS = float(np.finfo(np.float32).eps)


def _log1p_form(sp, sq):
    inv = reciprocal(sq)
    d = (sp - sq) * inv
    return x_minus_log1p(d * (2 + d), 2 * jnp.log(sp * inv))


def _textbook(sp, sq):
    r2 = (sp / sq) ** 2
    return r2 - 1 - jnp.log(r2)


def reference(sp, sq):
    """``f`` in float64 from float32 inputs: a series next to r = 1, log1p near it, log far."""
    sp, sq = sp.astype(np.float64), sq.astype(np.float64)
    d = (sp - sq) / sq
    r = sp / sq
    with np.errstate(divide="ignore", invalid="ignore"):
        out = d * (2 + d) - 2 * np.log1p(d)
        far = np.abs(d) > 0.5
        out[far] = r[far] ** 2 - 1 - 2 * np.log(r[far])
    near = np.abs(d) < 1e-3
    x = d[near]
    # r² − 1 − 2 log(1 + x) = x² + 2 (x − log1p x), and x − log1p x = x²/2 − x³/3 + ...
    out[near] = x**2 + 2 * (x**2 / 2 - x**3 / 3 + x**4 / 4 - x**5 / 5 + x**6 / 6)
    return out


def ratios(n_log=2_000_001, n_near=1_000_001):
    return np.concatenate([
        np.exp(np.linspace(np.log(1e-30), np.log(1e18), n_log)),
        np.linspace(0.5, 2.0, n_near),
    ]).astype(np.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--quick", action="store_true", help="100x fewer ratios")
    args = ap.parse_args(argv)
    r = ratios(20_001, 10_001) if args.quick else ratios()
    kernels = {"vikl square_ratio_term": square_ratio_term, "x - log1p(x) form": _log1p_form,
               "textbook": _textbook}
    print(f"{len(r):,} ratios in [1e-30, 1e18]; relative error of float32 values against float64")
    print("| kernel | s2 | median | max | max / eps |")
    print("|---|---|---|---|---|")
    worst = {}
    for s2 in (1.0, 3.7, 0.3, 1e-20, 1e20):
        sq = np.full_like(r, s2)
        sp = (r.astype(np.float64) * s2).astype(np.float32)
        ref = reference(sp, sq)
        ok = (sp >= np.finfo(np.float32).tiny) & (sp / sq >= np.finfo(np.float32).tiny)
        ok &= np.isfinite(ref) & (ref > 0) & (ref < float(np.finfo(np.float32).max))
        for name, fn in kernels.items():
            got = np.asarray(jax.jit(fn)(jnp.asarray(sp), jnp.asarray(sq)), np.float64)
            rel = np.abs(got[ok] - ref[ok]) / ref[ok]
            worst[name] = max(worst.get(name, 0.0), rel.max())
            print(f"| {name} | {s2:g} | {np.median(rel):.2g} | {rel.max():.3g} | {rel.max() / EPS:.1f} |")
    print()
    for name, w in worst.items():
        print(f"{name}: largest relative error {w:.3g} ({w / EPS:.1f} eps)")
    return worst


if __name__ == "__main__":
    main()
