"""Adversarial sweep of vikl's closed forms (issue 19): extremes, near-equal pairs, gradients at p = q.

For every registered closed-form KL pair (``vikl.registered_kl_pairs()``, ids as in
``tests/families.py``) and every family's entropy, in float32 and float64
(``jax.enable_x64``):

1. extremes: every combination of extreme p and q parameters; KL never NaN or
   negative, and within a stated tolerance of mpmath textbook formulas (45
   digits plus the decimal orders the arguments span), or, in float32 where
   no formula is at hand, of vikl's float64 value;
2. near-equal pairs: q moved by a relative 1e-1 … 1e-7 from p; relative error
   against the mpmath formulas;
3. gradients at p = q: finite and zero to rounding, w.r.t. every parameter of
   both arguments (cross pairs whose types never coincide: finite).

Cases are batched per pair (one compiled KL per pair and dtype, one gradient).
Writes a markdown summary (``--out``) and, beside it, a JSON of every failure.
The rules and tolerances are printed at the top of the summary (DOC_TOLERANCES).

Run:  python -m benchmarks.adversarial_sweep [--quick] [--pairs Normal-Normal,Gamma-Gamma] [--out PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import pathlib
import platform
import sys
import time
from collections.abc import Callable

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run as a file: tests/ importable

import vikl
from tests import families

mp.mp.dps = 50

# Extreme values per parameter kind. "pos" serves scales, rates, concentrations,
# df, covariance scales and Categorical weights.
POS = {"float32": [1e-30, 1e-10, 1.0, 1e10, 1e30]}
POS["float64"] = [1e-300] + POS["float32"] + [1e300]
LOC = [-1e30, -1.0, 0.0, 1.5, 1e30]
PROB = {"float32": [1e-30, 1e-10, 0.3, 0.5, 1 - 1e-7]}
PROB["float64"] = [1e-300] + PROB["float32"] + [1 - 1e-15]
COUNT = [1.0, 10.0, 1e4, 1e10, 1e30]

_RNG = np.random.default_rng(7)
_LOC3 = np.linspace(-0.3, 0.4, 3)
_DIAG3 = np.linspace(0.8, 1.3, 3)
_L3 = np.tril(0.3 * _RNG.standard_normal((3, 3)), -1) + np.diag([0.9, 1.2, 1.05])
_W3 = 0.4 * np.random.default_rng(3).standard_normal((3, 2))
_D3 = np.linspace(0.7, 1.2, 3)


@dataclasses.dataclass
class Spec:
    """How to build, perturb and evaluate one family.

    Attributes:
      make: ``args -> Distribution`` (args: dict of arrays; also used under jit).
      kinds: argument name -> kind ("loc", "scale", "cov", "shape", "prob",
        "logit", "count", "tril").
      grid: ``dtype name -> list of args rows`` (float64 values) at extremes.
      from_dist: ``Distribution -> args`` (reads the tests' example instances).
      canon: ``args row -> (form, params)`` in mpmath, or None.
      mp_entropy: ``args row -> mpf`` or None.
      discrete: entropy must be >= 0.
    """

    make: Callable
    kinds: dict
    grid: Callable
    from_dist: Callable
    canon: Callable | None = None
    mp_entropy: Callable | None = None
    discrete: bool = False
    dim: int = 0


def _f(x):
    return mp.mpf(float(x))


def _product(**lists):
    names = list(lists)
    return [dict(zip(names, vals)) for vals in itertools.product(*lists.values())]


def _loc_scale(cls, canon_name, mp_entropy):
    return Spec(
        make=lambda a: cls(a["loc"], a["scale"]),
        kinds={"loc": "loc", "scale": "scale"},
        grid=lambda dt: _product(loc=LOC, scale=POS[dt]),
        from_dist=lambda d: {"loc": d.loc, "scale": d.scale},
        canon=lambda a: (canon_name, (_f(a["loc"]), _f(a["scale"]))),
        mp_entropy=lambda a: mp_entropy(_f(a["loc"]), _f(a["scale"])),
    )


def _mvn_grid(dt, dim, key):
    rows = []
    for c, s in itertools.product(LOC, POS[dt]):
        rows.append(key(c, s, dim))
    return rows


def _gauss_canon(mu, cov):
    return "gauss", ([_f(m) for m in np.ravel(mu)], cov)


def _diag_cov(values):
    n = len(values)
    return [[values[i] if i == j else mp.mpf(0) for j in range(n)] for i in range(n)]


def _det_inv(c):
    """Determinant and inverse of a 1x1 or 3x3 matrix (lists of mpf) by cofactors."""
    if len(c) == 1:
        return c[0][0], [[1 / c[0][0]]]
    (a, b, e), (d, f, g), (h, i, k) = c
    cof = [[f * k - g * i, -(d * k - g * h), d * i - f * h],
           [-(b * k - e * i), a * k - e * h, -(a * i - b * h)],
           [b * g - e * f, -(a * g - e * d), a * f - b * d]]
    det = a * cof[0][0] + b * cof[0][1] + e * cof[0][2]
    return det, [[cof[j][r] / det for j in range(3)] for r in range(3)]


def _mvn_diag(dim):
    loc, diag = (_LOC3, _DIAG3) if dim == 3 else (np.array([0.3]), np.array([1.2]))
    return Spec(
        make=lambda a: vikl.MultivariateNormalDiag(a["loc"], a["scale_diag"]),
        kinds={"loc": "loc", "scale_diag": "scale"},
        grid=lambda dt: _mvn_grid(dt, dim, lambda c, s, d: {"loc": c * loc, "scale_diag": s * diag}),
        from_dist=lambda d: {"loc": d.loc, "scale_diag": d.scale_diag},
        canon=lambda a: _gauss_canon(a["loc"], _diag_cov([_f(x) ** 2 for x in a["scale_diag"]])),
        mp_entropy=lambda a: _gauss_entropy(_diag_cov([_f(x) ** 2 for x in a["scale_diag"]])),
        dim=dim,
    )


def _tril_cov(L):
    m = [[_f(x) for x in row] for row in np.tril(L)]
    n = len(m)
    return [[mp.fsum(m[i][k] * m[j][k] for k in range(n)) for j in range(n)] for i in range(n)]


def _mvn_full(dim):
    loc, tril = (_LOC3, _L3) if dim == 3 else (np.array([0.3]), np.array([[1.2]]))
    return Spec(
        make=lambda a: vikl.MultivariateNormal(a["loc"], scale_tril=a["scale_tril"]),
        kinds={"loc": "loc", "scale_tril": "tril"},
        grid=lambda dt: _mvn_grid(dt, dim, lambda c, s, d: {"loc": c * loc, "scale_tril": s * tril}),
        from_dist=lambda d: {"loc": d.loc, "scale_tril": d.scale_tril},
        canon=lambda a: _gauss_canon(a["loc"], _tril_cov(a["scale_tril"])),
        mp_entropy=lambda a: _gauss_entropy(_tril_cov(a["scale_tril"])),
        dim=dim,
    )


def _lowrank_cov(a):
    w = [[_f(x) for x in row] for row in a["cov_factor"]]
    d = [_f(x) for x in a["cov_diag"]]
    n = len(w)
    return [[mp.fsum(w[i][k] * w[j][k] for k in range(len(w[i]))) + (d[i] if i == j else 0) for j in range(n)]
            for i in range(n)]


def _mvn_lowrank(dim):
    loc, w, diag = (_LOC3, _W3, _D3) if dim == 3 else (np.array([0.3]), np.array([[0.5, 0.4]]), np.array([1.0]))
    return Spec(
        make=lambda a: vikl.LowRankMultivariateNormal(a["loc"], a["cov_factor"], a["cov_diag"]),
        kinds={"loc": "loc", "cov_factor": "scale", "cov_diag": "cov"},
        grid=lambda dt: _mvn_grid(
            dt, dim, lambda c, v, d: {"loc": c * loc, "cov_factor": np.sqrt(v) * w, "cov_diag": v * diag}
        ),
        from_dist=lambda d: {"loc": d.loc, "cov_factor": d.cov_factor, "cov_diag": d.cov_diag},
        canon=lambda a: _gauss_canon(a["loc"], _lowrank_cov(a)),
        mp_entropy=lambda a: _gauss_entropy(_lowrank_cov(a)),
        dim=dim,
    )


def _gauss_entropy(cov):
    return mp.mpf(len(cov)) / 2 * mp.log(2 * mp.pi * mp.e) + mp.log(_det_inv(cov)[0]) / 2


def _gamma_entropy(a, b):
    return a - mp.log(b) + mp.loggamma(a) + (1 - a) * mp.digamma(a)


def _lbeta(a, b):
    return mp.loggamma(a) + mp.loggamma(b) - mp.loggamma(a + b)


def _beta_entropy(a, b):
    return _lbeta(a, b) - (a - 1) * mp.digamma(a) - (b - 1) * mp.digamma(b) + (a + b - 2) * mp.digamma(a + b)


def _dirichlet_entropy(alpha):
    a0 = mp.fsum(alpha)
    lb = mp.fsum(mp.loggamma(x) for x in alpha) - mp.loggamma(a0)
    return lb + (a0 - len(alpha)) * mp.digamma(a0) - mp.fsum((x - 1) * mp.digamma(x) for x in alpha)


def _studentt_entropy(a):
    nu, s = _f(a["df"]), _f(a["scale"])
    h = (nu + 1) / 2 * (mp.digamma((nu + 1) / 2) - mp.digamma(nu / 2))
    return h + mp.log(mp.sqrt(nu)) + _lbeta(nu / 2, mp.mpf(1) / 2) + mp.log(s)


def _xlogx(x):
    return mp.mpf(0) if x == 0 else x * mp.log(x)


def _bern_entropy(p):
    return -_xlogx(p) - _xlogx(1 - p)


def _softmax(logits):
    z = [_f(x) for x in logits]
    m = max(z)
    lse = m + mp.log(mp.fsum(mp.exp(x - m) for x in z))
    return [x - lse for x in z]


def _cat_entropy(a):
    lp = _softmax(a["logits"])
    return -mp.fsum(mp.exp(x) * x for x in lp)


def _probs_spec(cls, canon_name, mp_entropy):
    return Spec(
        make=lambda a: cls(probs=a["probs"]),
        kinds={"probs": "prob"},
        grid=lambda dt: _product(probs=PROB[dt]),
        from_dist=lambda d: {"probs": d.probs},
        canon=lambda a: (canon_name, (_f(a["probs"]),)),
        mp_entropy=None if mp_entropy is None else (lambda a: mp_entropy(_f(a["probs"]))),
        discrete=True,
    )


def _uniform_grid(dt):
    rows = []
    for low, width in itertools.product(LOC, POS[dt]):
        high = low + width
        if np.asarray(high, dt) > np.asarray(low, dt) and np.isfinite(np.asarray(high, dt)):
            rows.append({"low": low, "high": high})
    return rows


def _dirichlet_grid(dt):
    return [{"concentration": np.array([a, b, 1.5])} for a, b in itertools.product(POS[dt], POS[dt])]


def _categorical_grid(dt):
    return [{"logits": np.log(np.array([a, b, 1.0]))} for a, b in itertools.product(POS[dt], POS[dt])]


SPECS = {
    "Normal": _loc_scale(vikl.Normal, "normal", lambda m, s: mp.log(2 * mp.pi * mp.e) / 2 + mp.log(s)),
    "Laplace": _loc_scale(vikl.Laplace, "laplace", lambda m, s: 1 + mp.log(2 * s)),
    "Cauchy": _loc_scale(vikl.Cauchy, "cauchy", lambda m, s: mp.log(4 * mp.pi * s)),
    "Gumbel": _loc_scale(vikl.Gumbel, "gumbel", lambda m, s: mp.log(s) + mp.euler + 1),
    "LogNormal": _loc_scale(
        vikl.LogNormal, "lognormal", lambda m, s: m + mp.log(2 * mp.pi * mp.e) / 2 + mp.log(s)
    ),
    "StudentT": Spec(
        make=lambda a: vikl.StudentT(a["df"], a["loc"], a["scale"]),
        kinds={"df": "shape", "loc": "loc", "scale": "scale"},
        grid=lambda dt: _product(df=POS[dt], loc=LOC, scale=POS[dt]),
        from_dist=lambda d: {"df": d.df, "loc": d.loc, "scale": d.scale},
        mp_entropy=_studentt_entropy,
    ),
    "HalfNormal": Spec(
        make=lambda a: vikl.HalfNormal(a["scale"]),
        kinds={"scale": "scale"},
        grid=lambda dt: _product(scale=POS[dt]),
        from_dist=lambda d: {"scale": d.scale},
        canon=lambda a: ("halfnormal", (_f(a["scale"]),)),
        mp_entropy=lambda a: mp.log(mp.pi * _f(a["scale"]) ** 2 / 2) / 2 + mp.mpf(1) / 2,
    ),
    "Exponential": Spec(
        make=lambda a: vikl.Exponential(a["rate"]),
        kinds={"rate": "scale"},
        grid=lambda dt: _product(rate=POS[dt]),
        from_dist=lambda d: {"rate": d.rate},
        canon=lambda a: ("gamma", (mp.mpf(1), _f(a["rate"]))),
        mp_entropy=lambda a: 1 - mp.log(_f(a["rate"])),
    ),
    "Gamma": Spec(
        make=lambda a: vikl.Gamma(a["concentration"], a["rate"]),
        kinds={"concentration": "shape", "rate": "scale"},
        grid=lambda dt: _product(concentration=POS[dt], rate=POS[dt]),
        from_dist=lambda d: {"concentration": d.concentration, "rate": d.rate},
        canon=lambda a: ("gamma", (_f(a["concentration"]), _f(a["rate"]))),
        mp_entropy=lambda a: _gamma_entropy(_f(a["concentration"]), _f(a["rate"])),
    ),
    "Beta": Spec(
        make=lambda a: vikl.Beta(a["concentration1"], a["concentration0"]),
        kinds={"concentration1": "shape", "concentration0": "shape"},
        grid=lambda dt: _product(concentration1=POS[dt], concentration0=POS[dt]),
        from_dist=lambda d: {"concentration1": d.concentration1, "concentration0": d.concentration0},
        canon=lambda a: ("beta", (_f(a["concentration1"]), _f(a["concentration0"]))),
        mp_entropy=lambda a: _beta_entropy(_f(a["concentration1"]), _f(a["concentration0"])),
    ),
    "Uniform": Spec(
        make=lambda a: vikl.Uniform(a["low"], a["high"]),
        kinds={"low": "loc", "high": "loc"},
        grid=_uniform_grid,
        from_dist=lambda d: {"low": d.low, "high": d.high},
        canon=lambda a: ("uniform", (_f(a["low"]), _f(a["high"]))),
        mp_entropy=lambda a: mp.log(_f(a["high"]) - _f(a["low"])),
    ),
    "Dirichlet": Spec(
        make=lambda a: vikl.Dirichlet(a["concentration"]),
        kinds={"concentration": "shape"},
        grid=_dirichlet_grid,
        from_dist=lambda d: {"concentration": d.concentration},
        canon=lambda a: ("dirichlet", ([_f(x) for x in a["concentration"]],)),
        mp_entropy=lambda a: _dirichlet_entropy([_f(x) for x in a["concentration"]]),
    ),
    "Categorical": Spec(
        make=lambda a: vikl.Categorical(logits=a["logits"]),
        kinds={"logits": "logit"},
        grid=_categorical_grid,
        from_dist=lambda d: {"logits": d.logits},
        canon=lambda a: ("categorical", (_softmax(a["logits"]),)),
        mp_entropy=_cat_entropy,
        discrete=True,
    ),
    "Bernoulli": _probs_spec(vikl.Bernoulli, "bernoulli", _bern_entropy),
    "Geometric": _probs_spec(vikl.Geometric, "geometric", lambda p: _bern_entropy(p) / p),
    "Poisson": Spec(
        make=lambda a: vikl.Poisson(a["rate"]),
        kinds={"rate": "shape"},
        grid=lambda dt: _product(rate=POS[dt]),
        from_dist=lambda d: {"rate": d.rate},
        canon=lambda a: ("poisson", (_f(a["rate"]),)),
        discrete=True,
    ),
    "Binomial": Spec(
        make=lambda a: vikl.Binomial(a["total_count"], probs=a["probs"]),
        kinds={"total_count": "count", "probs": "prob"},
        grid=lambda dt: _product(total_count=COUNT, probs=PROB[dt]),
        from_dist=lambda d: {"total_count": d.total_count, "probs": d.probs},
        canon=lambda a: ("binomial", (_f(a["total_count"]), _f(a["probs"]))),
        discrete=True,
    ),
    "MultivariateNormalDiag": _mvn_diag(3),
    "MultivariateNormal": _mvn_full(3),
    "LowRankMultivariateNormal": _mvn_lowrank(3),
}
SPECS_DIM1 = {
    "MultivariateNormalDiag": _mvn_diag(1),
    "MultivariateNormal": _mvn_full(1),
    "LowRankMultivariateNormal": _mvn_lowrank(1),
}
SPECS["Normal"].canon = lambda a: ("normal", (_f(a["loc"]), _f(a["scale"])))
GAUSSIAN = {"Normal", *SPECS_DIM1}


def spec_pair(name_p: str, name_q: str):
    """The specs of a pair: 1-d Gaussian vector specs when the other side is ``Normal``."""
    table = SPECS
    if "Normal" in (name_p, name_q) and GAUSSIAN & {name_p, name_q} - {"Normal"}:
        table = {**SPECS, **SPECS_DIM1}
    return table[name_p], table[name_q]


# ---------------------------------------------------------------------------
# mpmath KL formulas (textbook forms, 50 digits) on the canonical forms above.


def _kl_normal(p, q):
    (m1, s1), (m2, s2) = p, q
    return mp.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - mp.mpf(1) / 2


def _kl_laplace(p, q):
    (m1, b1), (m2, b2) = p, q
    d = abs(m1 - m2)
    return mp.log(b2 / b1) + d / b2 + b1 / b2 * mp.exp(-d / b1) - 1


def _kl_cauchy(p, q):
    (m1, g1), (m2, g2) = p, q
    return mp.log(((g1 + g2) ** 2 + (m1 - m2) ** 2) / (4 * g1 * g2))


def _kl_gumbel(p, q):
    (m1, b1), (m2, b2) = p, q
    r = b1 / b2
    return (mp.log(b2 / b1) + (m1 - m2) / b2 + mp.euler * (r - 1)
            + mp.exp((m2 - m1) / b2 + mp.loggamma(1 + r)) - 1)


def _kl_halfnormal(p, q):
    (s1,), (s2,) = p, q
    return mp.log(s2 / s1) + s1**2 / (2 * s2**2) - mp.mpf(1) / 2


def _kl_gamma(p, q):
    (a1, b1), (a2, b2) = p, q
    return ((a1 - a2) * mp.digamma(a1) - mp.loggamma(a1) + mp.loggamma(a2)
            + a2 * (mp.log(b1) - mp.log(b2)) + a1 * (b2 - b1) / b1)


def _kl_beta(p, q):
    (a1, b1), (a2, b2) = p, q
    return (_lbeta(a2, b2) - _lbeta(a1, b1) + (a1 - a2) * mp.digamma(a1) + (b1 - b2) * mp.digamma(b1)
            + (a2 - a1 + b2 - b1) * mp.digamma(a1 + b1))


def _kl_uniform(p, q):
    (l1, h1), (l2, h2) = p, q
    if l2 <= l1 and h1 <= h2:
        return mp.log((h2 - l2) / (h1 - l1))
    return mp.inf


def _kl_dirichlet(p, q):
    (a,), (b,) = p, q
    a0, b0 = mp.fsum(a), mp.fsum(b)
    out = mp.loggamma(a0) - mp.fsum(mp.loggamma(x) for x in a) - mp.loggamma(b0)
    out += mp.fsum(mp.loggamma(x) for x in b)
    return out + mp.fsum((x - y) * (mp.digamma(x) - mp.digamma(a0)) for x, y in zip(a, b))


def _kl_categorical(p, q):
    (lp,), (lq,) = p, q
    return mp.fsum(mp.exp(x) * (x - y) for x, y in zip(lp, lq))


def _kl_bern_terms(a, b):
    out = mp.mpf(0)
    for x, y in ((a, b), (1 - a, 1 - b)):
        if x > 0:
            out += mp.inf if y == 0 else x * mp.log(x / y)
    return out


def _kl_bernoulli(p, q):
    return _kl_bern_terms(p[0], q[0])


def _kl_geometric(p, q):
    (a,), (b,) = p, q
    return mp.log(a / b) + (1 - a) / a * mp.log((1 - a) / (1 - b))


def _kl_poisson(p, q):
    (r1,), (r2,) = p, q
    return r1 * mp.log(r1 / r2) - r1 + r2


def _kl_binomial(p, q):
    (n1, a), (n2, b) = p, q
    if n1 != n2:
        return mp.inf if n1 > n2 else mp.nan
    return n1 * _kl_bern_terms(a, b)


def _kl_gauss(p, q):
    (m1, c1), (m2, c2) = p, q
    n = len(c1)
    det1, _ = _det_inv(c1)
    det2, inv = _det_inv(c2)
    d = [b - a for a, b in zip(m1, m2)]
    quad = mp.fsum(d[i] * inv[i][j] * d[j] for i in range(n) for j in range(n))
    tr = mp.fsum(inv[i][j] * c1[j][i] for i in range(n) for j in range(n))
    return (tr + quad - n + mp.log(det2) - mp.log(det1)) / 2


MP_KL = {
    "normal": _kl_normal, "lognormal": _kl_normal, "laplace": _kl_laplace, "cauchy": _kl_cauchy,
    "gumbel": _kl_gumbel, "halfnormal": _kl_halfnormal, "gamma": _kl_gamma, "beta": _kl_beta,
    "uniform": _kl_uniform, "dirichlet": _kl_dirichlet, "categorical": _kl_categorical,
    "bernoulli": _kl_bernoulli, "geometric": _kl_geometric, "poisson": _kl_poisson,
    "binomial": _kl_binomial, "gauss": _kl_gauss,
}


def _lift(form, params, other):
    """Maps a canonical form onto the other side's form where one embeds in the other."""
    if form == other:
        return form, params
    if form == "normal" and other == "gauss":
        return "gauss", ([params[0]], [[params[1] ** 2]])
    if form == "bernoulli" and other == "binomial":
        return "binomial", (mp.mpf(1), params[0])
    return None, None


SPECIAL_FORMS = {"gamma", "beta", "dirichlet", "gumbel"}
MAX_DPS = {"special": 120, "elementary": 700, "entropy": 400}


def _digits(*rows):
    """Decimal orders of magnitude spanned by the rows' non-zero arguments (sums must not absorb)."""
    xs = [abs(float(v)) for r in rows for a in r.values() for v in np.ravel(a) if v != 0 and np.isfinite(v)]
    xs.append(1.0)  # formulas add O(1) constants (and 1 - p) to the arguments
    return int(np.ceil(np.log10(max(xs)) - np.log10(min(xs))))


def _kl_beta_uniform(p, q):
    (a, b), (lo, hi) = p, q
    return -_beta_entropy(a, b) + mp.log(hi - lo) if lo <= 0 and hi >= 1 else mp.inf


def _kl_uniform_beta(p, q):
    (lo, hi), (a, b) = p, q
    if lo < 0 or hi > 1:
        return mp.inf

    def int_log(u, v):  # integral of log(x) over [u, v]
        return _xlogx(v) - v - _xlogx(u) + u

    w = hi - lo
    e_log_x, e_log_1mx = int_log(lo, hi) / w, int_log(1 - hi, 1 - lo) / w
    return -mp.log(w) - (a - 1) * e_log_x - (b - 1) * e_log_1mx + _lbeta(a, b)


MP_KL[("beta", "uniform")] = _kl_beta_uniform
MP_KL[("uniform", "beta")] = _kl_uniform_beta


def _forms(spec_p, spec_q, row_p, row_q):
    fp, pp = spec_p.canon(row_p)
    fq, pq = spec_q.canon(row_q)
    if (fp, fq) in MP_KL:
        return (fp, fq), pp, pq
    lifted = _lift(fp, pp, fq)
    if lifted[0] is not None:
        fp, pp = lifted
    else:
        fq, pq = _lift(fq, pq, fp)
    return (fp, pp, pq) if fp is not None and fp == fq else None


def mp_kl(spec_p, spec_q, row_p, row_q):
    """KL from textbook formulas in mpmath, or None where none is at hand (NaN: beyond budget).

    Works at ``45 + spread`` digits, where ``spread`` is the number of decimal
    orders between the smallest and largest argument (so that sums such as
    ``1e300 + 1.5`` keep their small part); rows needing more digits than
    ``MAX_DPS`` allows give NaN (no reference; checked by the rule only).
    """
    if spec_p.canon is None or spec_q.canon is None:
        return None
    with mp.workdps(15):
        found = _forms(spec_p, spec_q, row_p, row_q)
    if found is None:
        return None
    if spec_p is spec_q and all(np.array_equal(row_p[k], row_q[k]) for k in row_p):
        return mp.mpf(0)
    dps = 45 + _digits(row_p, row_q)
    names = found[0] if isinstance(found[0], tuple) else (found[0],)
    if dps > MAX_DPS["special" if SPECIAL_FORMS & set(names) else "elementary"]:
        return mp.nan
    with mp.workdps(dps):
        form, pp, pq = _forms(spec_p, spec_q, row_p, row_q)
        return max(MP_KL[form](pp, pq), mp.mpf(0))


def mp_entropy(spec, row):
    """The family's entropy in mpmath at ``45 + spread`` digits (NaN beyond ``MAX_DPS``)."""
    dps = 45 + _digits(row)
    if dps > MAX_DPS["entropy"]:
        return mp.nan
    with mp.workdps(dps):
        return spec.mp_entropy(row)


# ---------------------------------------------------------------------------
# Cases: extremes, near-equal pairs, gradient base points.

EPSILONS = [0.0] + [10.0**-k for k in range(1, 8)]
NUM_DIRECTIONS = 4
MULTIPLIERS = [1e-6, 1.0, 1e6]
TOL = {  # (rtol, atol) against a reference; near-equal: rtol only; gradient: dimensionless
    "float32": {"rtol": 1e-4, "atol": 1e-6, "near": 1e-3, "grad": 1e-5},
    "float64": {"rtol": 1e-9, "atol": 1e-12, "near": 1e-8, "grad": 1e-12},
}


def _row(args, i):
    return {k: np.asarray(v[i], np.float64) for k, v in args.items()}


def _stack(rows, dt):
    return {k: np.stack([np.asarray(r[k], np.float64) for r in rows]).astype(dt) for k in rows[0]}


def _example_args(name, spec, role, dim1):
    """Args of the tests' example instance (tests/families.py) for ``role`` 0 (p) or 1 (q)."""
    table = {**families.EXAMPLES, **families.EXAMPLES_DIM1} if dim1 else families.EXAMPLES
    d = table[name][role]()
    return {k: np.asarray(v, np.float64) for k, v in spec.from_dist(d).items()}


def _gauss_args(name, mu, cov, w, diag):
    if name == "Normal":
        return {"loc": mu[0], "scale": np.sqrt(cov[0, 0])}
    if name == "MultivariateNormalDiag":
        return {"loc": mu, "scale_diag": np.sqrt(np.diag(cov))}
    if name == "MultivariateNormal":
        return {"loc": mu, "scale_tril": np.linalg.cholesky(cov)}
    return {"loc": mu, "cov_factor": w, "cov_diag": diag}


_EMBED = {
    ("Exponential", "Gamma"): ({"rate": 1.3}, {"concentration": 1.0, "rate": 1.3}),
    ("Bernoulli", "Binomial"): ({"probs": 0.3}, {"total_count": 1.0, "probs": 0.3}),
    ("Beta", "Uniform"): ({"concentration1": 1.0, "concentration0": 1.0}, {"low": 0.0, "high": 1.0}),
}


def equal_base(np_, nq, sp, sq):
    """Args ``(ap, aq)`` with P(ap) = Q(aq) as distributions, or None if the types cannot meet."""
    if np_ == nq:
        a = _example_args(np_, sp, 0, sp.dim == 1)
        return a, {k: v.copy() for k, v in a.items()}
    if (np_, nq) in _EMBED:
        return tuple({k: np.asarray(v) for k, v in d.items()} for d in _EMBED[np_, nq])
    if (nq, np_) in _EMBED:
        return tuple({k: np.asarray(v) for k, v in d.items()} for d in _EMBED[nq, np_][::-1])
    if np_ in GAUSSIAN and nq in GAUSSIAN:
        dim = max(sp.dim, sq.dim, 1)
        mu = _LOC3 if dim == 3 else np.array([0.3])
        w = (_W3 if dim == 3 else np.array([[0.5, 0.4]]))
        if dim == 3 and "MultivariateNormalDiag" in (np_, nq):
            w = np.zeros_like(w)
        diag = _D3 if dim == 3 else np.array([1.0])
        cov = w @ w.T + np.diag(diag)
        return _gauss_args(np_, mu, cov, w, diag), _gauss_args(nq, mu, cov, w, diag)
    return None


def perturb(name, spec, args, eps, rng):
    """``args`` moved by a relative ``eps`` in a random direction (Uniform: widened)."""
    out = {}
    if name == "Uniform":
        width = args["high"] - args["low"]
        u = rng.uniform(0.2, 1.0, 2)
        return {"low": args["low"] - eps * u[0] * width, "high": args["high"] + eps * u[1] * width}
    for k, v in args.items():
        u = rng.uniform(-1.0, 1.0, np.shape(v))
        kind = spec.kinds[k]
        if kind == "count":
            out[k] = v
        elif kind == "logit":
            out[k] = v + eps * u
        else:
            out[k] = v * (1 + eps * u)
    return out


def scaled(spec, args, m):
    """Location and scale arguments times ``m`` (covariances times ``m**2``)."""
    power = {"loc": 1, "scale": 1, "tril": 1, "cov": 2}
    return {k: v * m ** power.get(spec.kinds[k], 0) for k, v in args.items()}


def _excluded(np_, nq, ap, aq):
    """Inputs with no closed form (documented: NotImplementedError eagerly, NaN under jit)."""
    if np_ == nq == "Binomial":
        n_p, n_q, a = ap["total_count"], aq["total_count"], ap["probs"]
        return n_p < n_q and 0 < a < 1
    return False


_VALID: dict = {}


def valid_grid(name, spec, dt, tally):
    """The family's extreme grid rows that its constructor accepts (rejections are failures)."""
    key = (name, spec.dim, dt)
    if key in _VALID:
        return _VALID[key]
    with _precision(dt):
        good = _accepted(name, spec, dt, tally)
    for _ in good:
        tally.add("construct", dt, True)
    _VALID[key] = good
    return good


def _accepted(name, spec, dt, tally):
    rows, good = spec.grid(dt), []
    try:
        spec.make(_stack(rows, dt))
        good = rows
    except Exception:  # noqa: BLE001 - a rejection is looked at row by row
        for row in rows:
            try:
                spec.make(_stack([row], dt))
                good.append(row)
            except Exception as e:  # noqa: BLE001
                tally.add("construct", dt, False, {"pair": name, "p": _jsonable(row),
                                                   "why": f"{type(e).__name__}: {str(e)[:200]}"})
    return good


def _jsonable(row):
    return {k: np.asarray(v, np.float64).tolist() for k, v in row.items()}


# ---------------------------------------------------------------------------
# Evaluation and checks.


class Tally:
    """Counts per (check, dtype), the failures, and the worst case per (pair, check, dtype)."""

    def __init__(self):
        self.counts = {}
        self.failures = []
        self.near_worst = {}

    def add(self, check, dt, ok, failure=None):
        c = self.counts.setdefault((check, dt), [0, 0])
        c[0] += 1
        c[1] += bool(ok)
        if not ok and failure is not None:
            self.failures.append({"check": check, "dtype": dt, **failure})


def _float(x):
    try:
        return float(x)
    except (TypeError, ValueError, OverflowError):
        return float("nan")


def _rel_err(got, ref):
    if got == ref:
        return 0.0
    if not (np.isfinite(got) and np.isfinite(ref)):
        return float("inf")
    return abs(got - ref) / abs(ref) if ref != 0 else float("inf")


def accurate(got, ref, dt, rtol, atol):
    """``got`` matches ``ref``: within ``rtol |ref| + atol``; beyond ``dt``'s range, an infinity."""
    big = float(np.finfo(dt).max)
    if np.isinf(ref) or abs(ref) > big:
        same_sign = np.sign(got) == np.sign(ref)
        return bool(same_sign and (np.isinf(got) or abs(got) >= big / 2))
    return bool(np.isfinite(got) and abs(got - ref) <= rtol * abs(ref) + atol)


def _kl_rule(got):
    """KL of finite inputs: never NaN, never negative (-0.0 allowed), +inf allowed."""
    if np.isnan(got):
        return "NaN"
    if got < 0:
        return "negative"
    return None


MODE = {"jit": True}
BUCKETS = [4**k for k in range(3, 10)]


def _maybe_jit(fn):
    """``fn`` through ``jax.jit`` (one compile per pair and dtype), or as is with ``--eager``
    (op by op, as the issue's reproducers run; on padded batches (``_run``) the
    per-operation kernels are shared across pairs, yet it measured ~2x slower)."""
    return jax.jit(fn) if MODE["jit"] else fn


def _pad(args):
    """Rows repeated up to the next bucket size, so that eager kernels are shared across pairs."""
    n = len(next(iter(args.values())))
    size = next((b for b in BUCKETS if b >= n), n)
    return {k: np.concatenate([v, np.repeat(v[-1:], size - n, axis=0)]) for k, v in args.items()}, n


def _compile_kl(sp, sq):
    return _maybe_jit(lambda a, b: vikl.kl_divergence(sp.make(a), sq.make(b)))


def _compile_grad(sp, sq):
    def total(a, b):
        return jnp.sum(vikl.kl_divergence(sp.make(a), sq.make(b)))

    return _maybe_jit(jax.grad(total, argnums=(0, 1)))


def _run(fn, *args):
    """``fn(*args)`` on padded rows, as float64 NumPy arrays cut back to the rows given, or the
    exception it raised."""
    padded = [_pad(a) for a in args]
    n = padded[0][1]
    try:
        out = fn(*(p for p, _ in padded))
        return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64)[:n], out), None
    except Exception as e:  # noqa: BLE001 - a crash is a finding
        return None, f"{type(e).__name__}: {str(e)[:300]}"


def pair_rows(np_, nq, sp, sq, dt, tally):
    """(tag, ap, aq, eps) rows of one pair: extremes x extremes, then near-equal cases."""
    rng = np.random.default_rng(0)
    gp = valid_grid(np_, sp, dt, tally)
    gq = valid_grid(nq, sq, dt, tally) if (np_, sp.dim) != (nq, sq.dim) else gp
    rows = [("ext", ap, aq, None) for ap in gp for aq in gq if not _excluded(np_, nq, ap, aq)]
    base = equal_base(np_, nq, sp, sq)
    if base is not None:
        for eps in EPSILONS:
            for _ in range(NUM_DIRECTIONS if eps else 1):
                rows.append(("near", base[0], perturb(nq, sq, base[1], eps, rng), eps))
    return rows, base


def grad_rows(np_, nq, sp, sq, base):
    """(tag, ap, aq) gradient points: p = q at several scales, else the tests' example pair."""
    if base is None:
        dim1 = 1 in (sp.dim, sq.dim)
        return [("gradx", _example_args(np_, sp, 0, dim1), _example_args(nq, sq, 1, dim1))]
    ms = [1.0] if "Uniform" in (np_, nq) else MULTIPLIERS
    return [("grad0", scaled(sp, base[0], m), scaled(sq, base[1], m)) for m in ms]


def mp_refs(sp, sq, ap, aq, tags):
    """mpmath values per row (NaN where no formula applies)."""
    out = np.full(len(tags), np.nan)
    if not tags or mp_kl(sp, sq, _row(ap, 0), _row(aq, 0)) is None:
        return out, False
    for i in range(len(tags)):
        out[i] = _float(mp_kl(sp, sq, _row(ap, i), _row(aq, i)))
    return out, True


def check_values(pair, dt, rows, got, ref, ref_src, tally):
    """Rule and accuracy checks of one pair's KL values in one dtype."""
    tol = TOL[dt]
    for (tag, ap, aq, eps), g, r, src in zip(rows, got, ref, ref_src):
        src = "none" if np.isnan(r) else str(src)
        case = {"pair": pair, "p": _jsonable(ap), "q": _jsonable(aq), "got": g, "ref": r,
                "ref_source": src, "eps": eps}
        why = _kl_rule(g)
        tally.add("kl_rule", dt, why is None, {**case, "why": why})
        if np.isnan(r):
            if tag == "ext":
                tally.add("kl_extremes_rule_only(no reference)", dt, True)
            continue
        err = _rel_err(g, r)
        if tag == "ext":
            ok = accurate(g, r, dt, tol["rtol"], tol["atol"])
            tally.add(f"kl_extremes_vs_{src}", dt, ok, {**case, "rel_err": err, "why": "inaccurate"})
        else:
            ok = accurate(g, r, dt, tol["near"], 10 * float(np.finfo(dt).eps) ** 2) and why is None
            tally.add(f"near_equal_vs_{src}", dt, ok, {**case, "rel_err": err, "why": why or "inaccurate"})
            w = tally.near_worst.setdefault((pair, dt), {"err": 0.0, "eps": None, "ref_source": src,
                                                         "checked": 0, "failed": 0})
            w["checked"] += 1
            w["failed"] += not ok
            if eps and (err > w["err"] or w["eps"] is None):
                w.update(err=err, eps=eps)


def check_grads(pair, dt, names, sp, sq, grows, tally):
    """Gradients of KL(p(θ), q(θ0)) w.r.t. both arguments' parameters."""
    ap, aq = (_stack([r[i] for r in grows], dt) for i in (1, 2))
    with _precision(dt):
        res, err = _run(_compile_grad(sp, sq), ap, aq)
    check = "grad_zero_at_p_eq_q" if grows[0][0] == "grad0" else "grad_finite_cross_pair"
    for i, (tag, a, b) in enumerate(grows):
        case = {"pair": pair, "p": _jsonable(a), "q": _jsonable(b)}
        if res is None:
            tally.add(check, dt, False, {**case, "why": err})
            continue
        worst, finite = 0.0, True
        for side, spec, args, name in ((0, sp, ap, names[0]), (1, sq, aq, names[1])):
            for k, g in res[side].items():
                kind = spec.kinds[k]
                if kind == "count":
                    continue
                gi, xi = g[i], np.asarray(args[k][i], np.float64)
                finite &= bool(np.all(np.isfinite(gi)))
                if name != "Uniform":
                    worst = max(worst, float(np.max(np.abs(gi * xi), initial=0.0)))
        ok = finite and (tag == "gradx" or worst <= TOL[dt]["grad"])
        tally.add(check, dt, ok, {**case, "got": worst, "why": "non-finite" if not finite else "not 0"})


def _precision(dt):
    return jax.enable_x64(dt == "float64")


def sweep_pair(names, tally):
    """All KL checks of one registered pair, in float32 then float64."""
    np_, nq = names
    pair = f"{np_}-{nq}"
    sp, sq = spec_pair(np_, nq)
    rows32, base = pair_rows(np_, nq, sp, sq, "float32", tally)
    rows64, _ = pair_rows(np_, nq, sp, sq, "float64", tally)
    ap32, aq32 = (_stack([r[i] for r in rows32], "float32") for i in (1, 2))
    ap64, aq64 = (_stack([r[i] for r in rows64], "float64") for i in (1, 2))
    with _precision("float32"):
        got32, err32 = _run(_compile_kl(sp, sq), ap32, aq32)
    # float64 run: its own cases, then the float32 cases (rounded) as their float64 reference
    ap_all = {k: np.concatenate([ap64[k], ap32[k].astype(np.float64)]) for k in ap64}
    aq_all = {k: np.concatenate([aq64[k], aq32[k].astype(np.float64)]) for k in aq64}
    with _precision("float64"):
        got_all, err64 = _run(_compile_kl(sp, sq), ap_all, aq_all)
    for dt, err in (("float32", err32), ("float64", err64)):
        if err is not None:
            tally.add("kl_rule", dt, False, {"pair": pair, "why": err})
    mp32, _ = mp_refs(sp, sq, ap32, aq32, rows32)
    mp64, _ = mp_refs(sp, sq, ap64, aq64, rows64)
    if got32 is not None:
        f64ref = got_all[len(rows64):] if got_all is not None else np.full(len(rows32), np.nan)
        use_mp = ~np.isnan(mp32)
        ref = np.where(use_mp, mp32, f64ref)
        check_values(pair, "float32", rows32, got32, ref, np.where(use_mp, "mpmath", "float64"), tally)
    if got_all is not None:
        check_values(pair, "float64", rows64, got_all[: len(rows64)], mp64, ["mpmath"] * len(rows64), tally)
    grows = grad_rows(np_, nq, sp, sq, base)
    for dt in ("float32", "float64"):
        check_grads(pair, dt, names, sp, sq, grows, tally)


def sweep_entropy(name, tally):
    """Entropy of one family over its extreme grid, in float32 and float64."""
    spec = SPECS[name]
    rows = {dt: valid_grid(name, spec, dt, tally) for dt in ("float32", "float64")}
    a32, a64 = _stack(rows["float32"], "float32"), _stack(rows["float64"], "float64")
    fn = _maybe_jit(lambda a: spec.make(a).entropy())
    with _precision("float32"):
        got32, err32 = _run(fn, a32)
    both = {k: np.concatenate([a64[k], a32[k].astype(np.float64)]) for k in a64}
    with _precision("float64"):
        got_all, err64 = _run(_maybe_jit(lambda a: spec.make(a).entropy()), both)
    n64 = len(rows["float64"])
    for dt, args, got, err in (("float32", a32, got32, err32), ("float64", a64, got_all, err64)):
        if got is None:
            tally.add("entropy_rule", dt, False, {"pair": name, "why": err})
            continue
        for i in range(len(rows[dt])):
            row = _row(args, i)
            g = float(got[i])
            bad = np.isnan(g) or (spec.discrete and g < 0)
            case = {"pair": name, "p": _jsonable(row), "got": g}
            tally.add("entropy_rule", dt, not bad, {**case, "why": "NaN" if np.isnan(g) else "negative"})
            if spec.mp_entropy is not None:
                ref, src = _float(mp_entropy(spec, row)), "mpmath"
            elif dt == "float32" and got_all is not None:
                ref, src = float(got_all[n64 + i]), "float64"
            else:
                continue
            if np.isnan(ref):
                continue
            ok = accurate(g, ref, dt, TOL[dt]["rtol"], TOL[dt]["atol"])
            tally.add(f"entropy_vs_{src}", dt, ok,
                      {**case, "ref": ref, "ref_source": src, "rel_err": _rel_err(g, ref), "why": "inaccurate"})


# ---------------------------------------------------------------------------
# Report.


def _clean(x):
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if np.isfinite(x) else repr(x)
    return x


def _severity(f):
    if f.get("why") not in ("inaccurate", "not 0"):
        return float("inf")
    return f.get("rel_err", f.get("got", 0.0)) if not np.isnan(f.get("rel_err", 0.0)) else float("inf")


def _fmt(v):
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, (float, int, np.floating)):
        return f"{float(v):.4g}"
    return "" if v is None else str(v)


def summary(tally, meta):
    """The markdown summary: counts, near-equal accuracy, failures grouped by pair."""
    lines = [f"# Adversarial sweep (issue 19): {meta['scope']}", "",
             (f"`{meta['command']}` — {meta['date']}, {meta['machine']}, jax {meta['jax']}, "
              f"{meta['mode']} evaluation, {meta['wall_s']:.0f} s wall, {meta['cpu_s']:.0f} s CPU."),
             "",
             f"Registered pairs not swept (no parameter spec; a Transformed pair's KL is its bases' KL, "
             f"swept under the bases' pairs): {meta.get('unswept', 'none')}.",
             "", DOC_TOLERANCES, "", "## Counts", "",
             "| check | dtype | checked | passed | failed |", "|---|---|---:|---:|---:|"]
    for (check, dt), (n, ok) in sorted(tally.counts.items()):
        lines.append(f"| {check} | {dt} | {n} | {ok} | {n - ok} |")
    lines += ["", "## Near-equal pairs: worst relative error over ε = 1e-1 … 1e-7", "",
              "Failed counts apply the tolerance above (relative, plus the 10 eps² floor).", "",
              "| pair | float32 | at ε | failed | float64 | at ε | failed |", "|---|---:|---:|---:|---:|---:|---:|"]
    for pair in sorted({p for p, _ in tally.near_worst}):
        cells = []
        for dt in ("float32", "float64"):
            w = tally.near_worst.get((pair, dt), {"err": float("nan"), "eps": None, "checked": 0, "failed": 0})
            cells += [f"{w['err']:.2e}", _fmt(w["eps"]), f"{w['failed']}/{w['checked']}"]
        lines.append(f"| {pair} | " + " | ".join(cells) + " |")
    groups = {}
    for f in tally.failures:
        groups.setdefault(f["pair"], {}).setdefault((f["check"], f["dtype"]), []).append(f)
    lines += ["", f"## Failures by pair ({len(tally.failures)} in all; every one is in the JSON)", ""]
    if not groups:
        lines.append("None.")
    for pair in sorted(groups):
        lines += [f"### {pair}", "", "| check | dtype | failed | worst: p | q | got | reference | why |",
                  "|---|---|---:|---|---|---|---|---|"]
        for (check, dt), fs in sorted(groups[pair].items()):
            w = max(fs, key=_severity)
            ref = f"{_fmt(w.get('ref'))} ({w.get('ref_source', '')})" if "ref" in w else ""
            lines.append(f"| {check} | {dt} | {len(fs)} | {_fmt(w.get('p'))} | {_fmt(w.get('q'))} | "
                         f"{_fmt(w.get('got'))} | {ref} | {w.get('why', '')} |")
        lines.append("")
    return "\n".join(lines) + "\n"


DOC_TOLERANCES = """Rules and tolerances:
* **kl_rule**: KL of finite, valid inputs is never NaN and never negative (-0.0 allowed; no
  rounding slack: the issue asks KL >= 0 always); +inf is allowed.
* **kl_extremes_vs_mpmath / _vs_float64**: every combination of extreme p and q parameters
  (scales, rates, concentrations, df, covariance scales, Categorical weights in
  {1e-30, 1e-10, 1, 1e10, 1e30}, float64 also 1e-300 and 1e300; locations in {±1e30, -1, 0, 1.5};
  probabilities in {1e-30, 1e-10, 0.3, 0.5, 1-1e-7}, float64 also 1e-300, 1-1e-15; Binomial
  total_count in {1, 10, 1e4, 1e10, 1e30}). Pass: |got - ref| <= rtol |ref| + atol with
  rtol = 1e-4, atol = 1e-6 (float32), rtol = 1e-9, atol = 1e-12 (float64); where ref lies beyond
  the dtype's range, got must be the infinity of its sign. The reference is a textbook formula in
  mpmath evaluated at the *rounded* inputs (input rounding is not counted), at 45 + s digits
  where s is the number of decimal orders the row's arguments span (so 1e300 + 1.5 keeps its
  1.5); rows that would need more than 120 digits in a special-function formula (Gamma, Beta,
  Dirichlet, Gumbel) or 700 in an elementary one have no reference and are checked by the rule
  only (`kl_extremes_rule_only`). float32 rows without an mpmath value are compared with vikl's
  own float64 value at the same rounded inputs (weaker: counted separately as `_vs_float64`).
  Binomial-Binomial cases with p.total_count < q.total_count and 0 < probs < 1 are skipped
  (documented: no closed form).
* **near_equal_vs_mpmath**: for pairs whose types can describe the same distribution (same
  family; Exponential/Gamma; Bernoulli/Binomial; Beta/Uniform; the Gaussian families), q's
  arguments moved by a relative ε in {0, 1e-1, …, 1e-7} (4 random directions; Uniform widened)
  from p's: |got - ref| <= 1e-3 ref + 10 eps² (float32), 1e-8 ref + 10 eps² (float64; eps the
  dtype's machine epsilon: 10 eps² is about the KL of a perturbation of every argument by one
  ulp), and KL >= 0. The reference is
  mpmath at the rounded inputs: exact, where the quadratic (Fisher) approximation ½ δᵀ I(θ) δ is
  only asymptotic (its relative error is O(ε)).
* **grad_zero_at_p_eq_q**: jax.grad of sum KL w.r.t. every argument of p and of q (logits for
  Categorical, probs for Bernoulli/Geometric/Binomial, total_count excluded) at p = q, at the
  tests' example parameters with locations and scales times 1e-6, 1, 1e6: finite, and
  max |dKL/dθ · θ| <= 1e-5 (float32), 1e-12 (float64) (a dimensionless, scale-free measure;
  Uniform bounds only finite: the KL is not stationary in them). **grad_finite_cross_pair**:
  pairs whose types never coincide, at the tests' example pair: finite.
* **entropy_rule / entropy_vs_***: every family's entropy over its extreme grid: never NaN,
  >= 0 for discrete families; accuracy as for KL (mpmath where a formula is at hand, up to 400
  digits; Poisson and Binomial entropies against vikl float64).
* **construct**: extreme grid points the constructor rejects (all are finite and valid)."""


QUICK_PAIRS = ["Normal-Normal", "Gamma-Gamma", "Bernoulli-Bernoulli", "Cauchy-Cauchy", "Laplace-Normal",
               "MultivariateNormal-MultivariateNormal", "Exponential-Gamma", "Dirichlet-Dirichlet"]
DEFAULT_OUT = pathlib.Path(__file__).parent / "results" / "adversarial_sweep.md"


def _tasks(args):
    """The (kind, what) tasks, and the registered pairs left out for want of a parameter spec.

    Pairs with a side that has no spec in ``SPECS`` (``Transformed``: its KL is its
    bases' KL, swept under the bases' own pairs) are listed in the report, not swept.
    """
    pairs = [tuple(pq.__name__ for pq in pair) for pair in families.registered_pairs()]
    unswept = [p for p in pairs if not set(p) <= set(SPECS)]
    pairs = [p for p in pairs if p not in unswept]
    chosen = args.pairs.split(",") if args.pairs else (QUICK_PAIRS if args.quick else None)
    if chosen is not None:
        known = {f"{a}-{b}" for a, b in pairs}
        unknown = sorted(set(chosen) - known)
        if unknown:
            raise SystemExit(f"--pairs: unknown or unregistered pair(s) {unknown}; registered: {sorted(known)}")
        pairs = [p for p in pairs if f"{p[0]}-{p[1]}" in chosen]
        ents = sorted({n for p in pairs for n in p} & set(SPECS))
    else:
        ents = sorted(SPECS)
    return [("kl", p) for p in pairs] + [("entropy", n) for n in ents], unswept


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--quick", action="store_true", help=f"only {len(QUICK_PAIRS)} pairs and their entropies")
    ap.add_argument("--pairs", default=None, help="comma-separated pair ids (P-Q) to sweep")
    ap.add_argument("--out", default=None, help=f"markdown summary path (default {DEFAULT_OUT}; "
                    "--quick: adversarial_sweep_quick.md); the JSON of failures goes beside it")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    ap.add_argument("--eager", action="store_true",
                    help="evaluate op by op instead of through jax.jit (slower; the issue's snippets run so)")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out) if args.out else (
        DEFAULT_OUT.with_name("adversarial_sweep_quick.md") if args.quick else DEFAULT_OUT)
    tasks, unswept = _tasks(args)
    MODE["jit"] = not args.eager
    tally, t0 = Tally(), time.perf_counter()
    bar = tqdm(tasks, disable=args.no_progress, file=sys.stderr, unit="task")
    for kind, what in bar:
        bar.set_postfix_str("-".join(what) if kind == "kl" else f"entropy {what}")
        if kind == "kl":
            sweep_pair(what, tally)
        else:
            sweep_entropy(what, tally)
    meta = {"scope": f"{sum(k == 'kl' for k, _ in tasks)} KL pairs, "
                     f"{sum(k == 'entropy' for k, _ in tasks)} entropies",
            "command": "python -m benchmarks.adversarial_sweep " + " ".join(argv if argv is not None else sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "jax": jax.__version__, "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time(),
            "mode": "eager" if args.eager else "jax.jit",
            "unswept": ", ".join("-".join(p) for p in unswept) or "none"}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(summary(tally, meta))
    counts = [{"check": c, "dtype": d, "checked": n, "passed": k} for (c, d), (n, k) in sorted(tally.counts.items())]
    near = [{"pair": p, "dtype": d, **w} for (p, d), w in sorted(tally.near_worst.items())]
    out.with_suffix(".json").write_text(json.dumps(_clean(
        {"meta": meta, "counts": counts, "near_equal_worst": near, "failures": tally.failures}),
        separators=(",", ":")))
    failed = sum(n - k for n, k in tally.counts.values())
    print(f"{sum(n for n, _ in tally.counts.values())} checks, {failed} failed; wrote {out} and "
          f"{out.with_suffix('.json')} in {meta['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
