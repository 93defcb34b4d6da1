"""Ten posteriordb posteriors as JAX log densities and NumPyro models, with their checks.

The data, model descriptions (``models.md``) and reference draws live in a folder outside
the repository, by default ``../shared/posteriordb`` relative to the repository root; the
environment variable ``VIKL_POSTERIORDB`` (or ``--root`` on the command line) points
elsewhere. Each posterior is available in two independent forms:

* ``Posterior.model``: a NumPyro model function ``model(data)`` written term by term from
  ``models.md`` with NumPyro's own distributions (improper flat priors as
  ``ImproperUniform``);
* ``Posterior.logdensity(u)``: a hand-written log density on R^d (d = the unconstrained
  dimension) that includes the log-Jacobian of this module's own transforms, with
  ``constrain(u) -> dict`` and ``unconstrain(dict) -> u``.

Transforms: real -> identity; positive -> exp; simplex of size K -> Stan's centred
stick-breaking (K - 1 free coordinates); positive_ordered -> exp of the first entry, then
cumulative exp increments. The Lotka-Volterra ODE is solved by a fixed-step RK4 in
``lax.scan`` (``LV_SUBSTEPS`` steps per year); ``lv_accuracy`` checks it against SciPy's
``solve_ivp`` at tolerance 1e-11. RK4 rather than ``jax.experimental.ode.odeint``: odeint's
custom VJP has no forward mode (no ``jax.hessian``, which a Laplace initializer needs) and
its adaptive loop runs the longest step count for a whole vmapped batch.

Run the checks (README checks 2 and 3, NumPyro-versus-hand agreement, gradient timing)::

    python -m benchmarks.posteriordb --help
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, logsumexp

ENV_VAR = "VIKL_POSTERIORDB"
DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "posteriordb"
LV_SUBSTEPS = 10  # RK4 steps per unit time (max rel. error 2.7e-6 at the reference draws)
_LOG_2PI = float(np.log(2.0 * np.pi))


def posteriordb_dir(root=None) -> Path:
    """The posteriordb folder: ``root`` if given, else ``$VIKL_POSTERIORDB``, else the default.

    Raises:
        FileNotFoundError: the folder or its ``references.json`` does not exist.
    """
    path = Path(root if root is not None else os.environ.get(ENV_VAR, DEFAULT_ROOT))
    if not (path / "references.json").is_file():
        raise FileNotFoundError(
            f"posteriordb folder not found: {str(path)!r} has no references.json (pass root=... or set {ENV_VAR})"
        )
    return path


# ----------------------------------------------------------------------------------------
# Hand-written log densities of standard distributions (models.md, "Log densities used")


def _normal(x, m, s):
    return -0.5 * ((x - m) / s) ** 2 - jnp.log(s) - 0.5 * _LOG_2PI


def _cauchy(x, m, s):
    return -jnp.log(jnp.pi) - jnp.log(s) - jnp.log1p(((x - m) / s) ** 2)


def _student_t(x, nu, m, s):
    z2 = ((x - m) / s) ** 2
    const = gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)
    return const - jnp.log(s) - (nu + 1) / 2 * jnp.log1p(z2 / nu)


def _gamma(x, a, b):
    return a * np.log(b) - gammaln(a) + (a - 1) * jnp.log(x) - b * x


def _inv_gamma(x, a, b):
    return a * np.log(b) - gammaln(a) - (a + 1) * jnp.log(x) - b / x


def _lognormal(x, m, s):
    return _normal(jnp.log(x), m, s) - jnp.log(x)


def _dirichlet(x, a):
    return gammaln(jnp.sum(a)) - jnp.sum(gammaln(a)) + jnp.sum((a - 1) * jnp.log(x))


# ----------------------------------------------------------------------------------------
# Hand log densities on the constrained scale, one per posterior (params, data) -> scalar


def _arma_residuals(mu, phi, theta, y):
    """e_t = y_t - (mu + phi*y_{t-1} + theta*e_{t-1}), with y_0 = mu and e_0 = 0."""

    def step(carry, y_t):
        y_prev, e_prev = carry
        e_t = y_t - (mu + phi * y_prev + theta * e_prev)
        return (y_t, e_t), e_t

    _, e = jax.lax.scan(step, (mu, jnp.zeros_like(mu)), y)
    return e


def _lp_arma(p, d):
    e = _arma_residuals(p["mu"], p["phi"], p["theta"], d["y"])
    prior = _normal(p["mu"], 0.0, 10.0) + _normal(p["phi"], 0.0, 2.0) + _normal(p["theta"], 0.0, 2.0)
    return prior + _cauchy(p["sigma"], 0.0, 2.5) + jnp.sum(_normal(e, 0.0, p["sigma"]))


def _gp_cov(x, rho, alpha, sigma):
    """alpha^2 exp(-(x_i - x_j)^2 / (2 rho^2)) + sigma * I (sigma, not sigma^2, on the diagonal)."""
    dx = x[:, None] - x[None, :]
    return alpha**2 * jnp.exp(-(dx**2) / (2 * rho**2)) + sigma * jnp.eye(x.shape[0], dtype=x.dtype)


def _lp_gp(p, d):
    cov = _gp_cov(d["x"], p["rho"], p["alpha"], p["sigma"])
    chol = jnp.linalg.cholesky(cov)
    w = jax.scipy.linalg.solve_triangular(chol, d["y"], lower=True)
    n = d["y"].shape[0]
    loglik = -0.5 * jnp.sum(w**2) - jnp.sum(jnp.log(jnp.diag(chol))) - 0.5 * n * _LOG_2PI
    prior = _gamma(p["rho"], 25.0, 4.0) + _normal(p["alpha"], 0.0, 2.0) + _normal(p["sigma"], 0.0, 1.0)
    return prior + loglik


def _lp_kilpisjarvi(p, d):
    prior = _normal(p["alpha"], d["pmualpha"], d["psalpha"]) + _normal(p["beta"], d["pmubeta"], d["psbeta"])
    return prior + jnp.sum(_normal(d["y"], p["alpha"] + p["beta"] * d["x"], p["sigma"]))


def _lp_linreg(p, d):
    """Flat priors on beta and sigma: y ~ N(X beta, sigma) (mesquite, earnings)."""
    return jnp.sum(_normal(d["y"], d["X"] @ p["beta"], p["sigma"]))


def _lp_sblrc(p, d):
    prior = jnp.sum(_normal(p["beta"], 0.0, 10.0)) + _normal(p["sigma"], 0.0, 10.0)
    return prior + _lp_linreg(p, d)


def _lp_kidiq(p, d):
    return _cauchy(p["sigma"], 0.0, 2.5) + _lp_linreg(p, d)


def _hmm_emissions(phi, lam, u, v):
    """em[t, k] = log Exp(u_t | phi_k) + log Exp(v_t | lambda_k)."""
    return jnp.log(phi) - phi * u[:, None] + jnp.log(lam) - lam * v[:, None]


def _lp_hmm(p, d):
    log_tr = jnp.log(jnp.stack([p["theta1"], p["theta2"]]))  # row j = out of state j
    em = _hmm_emissions(p["phi"], p["lambda"], d["u"], d["v"])

    def step(g, em_t):
        return logsumexp(g[:, None] + log_tr, axis=0) + em_t, None

    g_last, _ = jax.lax.scan(step, em[0], em[1:])
    prior = _dirichlet(p["theta1"], d["alpha"][0]) + _dirichlet(p["theta2"], d["alpha"][1])
    prior += _normal(p["phi"][0], 0.0, 1.0) + _normal(p["phi"][1], 3.0, 1.0)
    prior += _normal(p["lambda"][0], 0.0, 1.0) + _normal(p["lambda"][1], 3.0, 1.0)
    return prior + logsumexp(g_last)


def _hsgp_coefficients(z, sd, lscale, slambda):
    """sqrt(S(w; sd, l)) * z with S(w) = sd^2 sqrt(2 pi) l exp(-l^2 w^2 / 2)."""
    # sqrt(S) in log space: S underflows to 0 for large l*w, and sqrt'(0) is a NaN gradient
    log_sqrt_spd = jnp.log(sd) + 0.25 * np.log(2 * np.pi) + 0.5 * jnp.log(lscale) - 0.25 * lscale**2 * slambda**2
    return jnp.exp(log_sqrt_spd) * z


def _lp_mcycle(p, d):
    c = _hsgp_coefficients(p["zgp_1"], p["sdgp_1"], p["lscale_1"], d["slambda_1"])
    h = _hsgp_coefficients(p["zgp_sigma_1"], p["sdgp_sigma_1"], p["lscale_sigma_1"], d["slambda_sigma_1"])
    mu = p["Intercept"] + d["Xgp_1"] @ c
    log_s = p["Intercept_sigma"] + d["Xgp_sigma_1"] @ h
    lp = _student_t(p["Intercept"], 3.0, -13.0, 36.0) + _student_t(p["sdgp_1"], 3.0, 0.0, 36.0)
    lp += jnp.sum(_normal(p["zgp_1"], 0.0, 1.0)) + _inv_gamma(p["lscale_1"], 1.124909, 0.0177)
    lp += _student_t(p["Intercept_sigma"], 3.0, 0.0, 10.0) + _student_t(p["sdgp_sigma_1"], 3.0, 0.0, 36.0)
    lp += jnp.sum(_normal(p["zgp_sigma_1"], 0.0, 1.0)) + _inv_gamma(p["lscale_sigma_1"], 1.124909, 0.0177)
    # log N(Y | mu, exp(log_s)) written with log_s directly (no log(exp(.)))
    return lp + jnp.sum(-0.5 * ((d["Y"] - mu) * jnp.exp(-log_s)) ** 2 - log_s - 0.5 * _LOG_2PI)


def lotka_volterra(theta, z0, n_times, substeps=LV_SUBSTEPS):
    """Prey/predator states at t = 1..n_times (from t = 0) by fixed-step RK4, shape (n_times, 2)."""
    a, b, c, dd = theta[0], theta[1], theta[2], theta[3]
    h = 1.0 / substeps

    def rhs(s):
        return jnp.stack([(a - b * s[1]) * s[0], (-c + dd * s[0]) * s[1]])

    def step(s, _):
        k1 = rhs(s)
        k2 = rhs(s + 0.5 * h * k1)
        k3 = rhs(s + 0.5 * h * k2)
        k4 = rhs(s + h * k3)
        return s + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4), None

    def year(s, _):
        s, _ = jax.lax.scan(step, s, None, length=substeps)
        return s, s

    _, states = jax.lax.scan(year, z0, None, length=n_times)
    return states


def _lp_lv(p, d):
    th, z0, sig = p["theta"], p["z_init"], p["sigma"]
    z = lotka_volterra(th, z0, d["y"].shape[0])
    lp = _normal(th[0], 1.0, 0.5) + _normal(th[2], 1.0, 0.5)
    lp += _normal(th[1], 0.05, 0.05) + _normal(th[3], 0.05, 0.05)
    lp += jnp.sum(_lognormal(sig, -1.0, 1.0)) + jnp.sum(_lognormal(z0, np.log(10.0), 1.0))
    lp += jnp.sum(_lognormal(d["y_init"], jnp.log(z0), sig))
    return lp + jnp.sum(_lognormal(d["y"], jnp.log(z), sig))


# ----------------------------------------------------------------------------------------
# NumPyro models, written with NumPyro's distributions (an independent implementation)


def _flat(shape=(), constraint=None):
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    event = shape
    return dist.ImproperUniform(constraint or constraints.real, (), event)


def _model_arma(d):
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    phi = numpyro.sample("phi", dist.Normal(0.0, 2.0))
    theta = numpyro.sample("theta", dist.Normal(0.0, 2.0))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    y = d["y"]
    # one-step-ahead means; the residual of step t is y_t minus its mean
    means = y - _arma_residuals(mu, phi, theta, y)
    numpyro.sample("y", dist.Normal(means, sigma), obs=y)


def _model_gp(d):
    import numpyro
    import numpyro.distributions as dist

    rho = numpyro.sample("rho", dist.Gamma(25.0, 4.0))
    alpha = numpyro.sample("alpha", dist.HalfNormal(2.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    cov = _gp_cov(d["x"], rho, alpha, sigma)
    numpyro.sample("y", dist.MultivariateNormal(jnp.zeros_like(d["y"]), covariance_matrix=cov), obs=d["y"])


def _model_kilpisjarvi(d):
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    alpha = numpyro.sample("alpha", dist.Normal(d["pmualpha"], d["psalpha"]))
    beta = numpyro.sample("beta", dist.Normal(d["pmubeta"], d["psbeta"]))
    sigma = numpyro.sample("sigma", _flat((), constraints.positive))
    numpyro.sample("y", dist.Normal(alpha + beta * d["x"], sigma), obs=d["y"])


def _model_linreg(d, beta_prior=None, sigma_prior=None):
    """y ~ N(X beta, sigma); flat priors unless given (mesquite, earnings, sblrc, kidiq)."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    k = d["X"].shape[1]
    beta = numpyro.sample("beta", beta_prior if beta_prior is not None else _flat((k,)))
    sigma = numpyro.sample("sigma", sigma_prior if sigma_prior is not None else _flat((), constraints.positive))
    numpyro.sample("y", dist.Normal(d["X"] @ beta, sigma), obs=d["y"])


def _model_sblrc(d):
    import numpyro.distributions as dist

    k = d["X"].shape[1]
    _model_linreg(d, dist.Normal(jnp.zeros(k, d["y"].dtype), 10.0).to_event(1), dist.HalfNormal(10.0))


def _model_kidiq(d):
    import numpyro.distributions as dist

    _model_linreg(d, None, dist.HalfCauchy(2.5))


def _scaled_forward(tr, em):
    """HMM log likelihood by the scaled forward algorithm in probability space (no initial term)."""

    def step(carry, em_t):
        a_prev, log_c = carry
        m = jnp.max(em_t)
        a = (a_prev @ tr) * jnp.exp(em_t - m)
        s = jnp.sum(a)
        return (a / s, log_c + jnp.log(s) + m), None

    m0 = jnp.max(em[0])
    a0 = jnp.exp(em[0] - m0)
    (_, log_c), _ = jax.lax.scan(step, (a0 / jnp.sum(a0), jnp.log(jnp.sum(a0)) + m0), em[1:])
    return log_c


def _model_hmm(d):
    import numpyro
    import numpyro.distributions as dist
    from numpyro.distributions import constraints

    theta1 = numpyro.sample("theta1", dist.Dirichlet(d["alpha"][0]))
    theta2 = numpyro.sample("theta2", dist.Dirichlet(d["alpha"][1]))
    phi = numpyro.sample("phi", _flat((2,), constraints.positive_ordered_vector))
    lam = numpyro.sample("lambda", _flat((2,), constraints.positive_ordered_vector))
    locs = jnp.array([0.0, 3.0], d["u"].dtype)
    numpyro.factor("phi_prior", dist.Normal(locs, 1.0).log_prob(phi).sum())
    numpyro.factor("lambda_prior", dist.Normal(locs, 1.0).log_prob(lam).sum())
    em = dist.Exponential(phi).log_prob(d["u"][:, None]) + dist.Exponential(lam).log_prob(d["v"][:, None])
    numpyro.factor("loglik", _scaled_forward(jnp.stack([theta1, theta2]), em))


def _model_mcycle(d):
    import numpyro
    import numpyro.distributions as dist

    def half_t(scale):
        return dist.TruncatedDistribution(dist.StudentT(3.0, 0.0, scale), low=0.0)

    def block(suffix, n, slambda):
        sd = numpyro.sample(f"sdgp{suffix}", half_t(36.0))
        lscale = numpyro.sample(f"lscale{suffix}", dist.InverseGamma(1.124909, 0.0177))
        z = numpyro.sample(f"zgp{suffix}", dist.Normal(jnp.zeros(n, slambda.dtype), 1.0).to_event(1))
        return _hsgp_coefficients(z, sd, lscale, slambda)

    intercept = numpyro.sample("Intercept", dist.StudentT(3.0, -13.0, 36.0))
    c = block("_1", d["slambda_1"].shape[0], d["slambda_1"])
    intercept_sigma = numpyro.sample("Intercept_sigma", dist.StudentT(3.0, 0.0, 10.0))
    h = block("_sigma_1", d["slambda_sigma_1"].shape[0], d["slambda_sigma_1"])
    mu = intercept + d["Xgp_1"] @ c
    s = jnp.exp(intercept_sigma + d["Xgp_sigma_1"] @ h)
    numpyro.sample("Y", dist.Normal(mu, s), obs=d["Y"])


def _model_lv(d):
    import numpyro
    import numpyro.distributions as dist

    dt = d["y"].dtype
    loc = jnp.array([1.0, 0.05, 1.0, 0.05], dt)
    scale = jnp.array([0.5, 0.05, 0.5, 0.05], dt)
    theta = numpyro.sample("theta", dist.TruncatedNormal(loc, scale, low=0.0).to_event(1))
    z_init = numpyro.sample("z_init", dist.LogNormal(jnp.full(2, np.log(10.0), dt), 1.0).to_event(1))
    sigma = numpyro.sample("sigma", dist.LogNormal(jnp.full(2, -1.0, dt), 1.0).to_event(1))
    z = lotka_volterra(theta, z_init, d["y"].shape[0])
    numpyro.sample("y_init", dist.LogNormal(jnp.log(z_init), sigma).to_event(1), obs=d["y_init"])
    numpyro.sample("y", dist.LogNormal(jnp.log(z), sigma).to_event(2), obs=d["y"])


# ----------------------------------------------------------------------------------------
# Data preparation: raw JSON -> dict of float64 arrays (only what the model uses)


def _arr(x):
    return np.asarray(x, dtype=np.float64)


def _prep_arma(r):
    return {"y": _arr(r["y"])}


def _prep_gp(r):
    return {"x": _arr(r["x"]), "y": _arr(r["y"])}


def _prep_kilpisjarvi(r):
    keys = ("x", "y", "pmualpha", "psalpha", "pmubeta", "psbeta")
    return {k: _arr(r[k]) for k in keys}


def _prep_mesquite(r):
    d1, d2 = _arr(r["diam1"]), _arr(r["diam2"])
    cols = [
        np.ones_like(d1),
        np.log(d1 * d2 * _arr(r["canopy_height"])),
        np.log(d1 * d2),
        np.log(d1 / d2),
        np.log(_arr(r["total_height"])),
        np.log(_arr(r["density"])),
        _arr(r["group"]),
    ]
    return {"X": np.stack(cols, axis=1), "y": np.log(_arr(r["weight"]))}


def _prep_sblrc(r):
    return {"X": _arr(r["X"]), "y": _arr(r["y"])}


def _prep_earnings(r):
    h = _arr(r["height"])
    return {"X": np.stack([np.ones_like(h), h], axis=1), "y": _arr(r["earn"])}


def _prep_kidiq(r):
    iq = _arr(r["mom_iq"])
    return {"X": np.stack([np.ones_like(iq), iq], axis=1), "y": _arr(r["kid_score"])}


def _prep_hmm(r):
    return {"u": _arr(r["u"]), "v": _arr(r["v"]), "alpha": _arr(r["alpha"])}


def _prep_mcycle(r):
    keys = ("Y", "Xgp_1", "Xgp_sigma_1")
    out = {k: _arr(r[k]) for k in keys}
    out["slambda_1"] = _arr(r["slambda_1"]).reshape(-1)
    out["slambda_sigma_1"] = _arr(r["slambda_sigma_1"]).reshape(-1)
    return out


def _prep_lv(r):
    ts = _arr(r["ts"])
    if not np.array_equal(ts, np.arange(1, ts.shape[0] + 1)):
        raise ValueError(f"lotka_volterra expects ts = 1..N (unit steps from 0), got {ts}")
    return {"y": _arr(r["y"]), "y_init": _arr(r["y_init"])}


# name -> (data preparation, hand constrained log density, NumPyro model)
SPECS = {
    "arma-arma11": (_prep_arma, _lp_arma, _model_arma),
    "gp_pois_regr-gp_regr": (_prep_gp, _lp_gp, _model_gp),
    "kilpisjarvi_mod-kilpisjarvi": (_prep_kilpisjarvi, _lp_kilpisjarvi, _model_kilpisjarvi),
    "mesquite-logmesquite_logvas": (_prep_mesquite, _lp_linreg, _model_linreg),
    "sblrc-blr": (_prep_sblrc, _lp_sblrc, _model_sblrc),
    "earnings-earn_height": (_prep_earnings, _lp_linreg, _model_linreg),
    "kidiq-kidscore_momiq": (_prep_kidiq, _lp_kidiq, _model_kidiq),
    "bball_drive_event_0-hmm_drive_0": (_prep_hmm, _lp_hmm, _model_hmm),
    "mcycle_gp-accel_gp": (_prep_mcycle, _lp_mcycle, _model_mcycle),
    "hudson_lynx_hare-lotka_volterra": (_prep_lv, _lp_lv, _model_lv),
}
NAMES = tuple(SPECS)


# ----------------------------------------------------------------------------------------
# Transforms of one parameter block: unconstrained u -> (constrained x, log|det J|)


def _stick_breaking(u):
    """Stan's centred stick-breaking: K-1 reals -> K-simplex, with its log|det J|."""
    k = u.shape[0] + 1
    xs, log_det, log_rem = [], jnp.zeros((), u.dtype), jnp.zeros((), u.dtype)
    for i in range(k - 1):
        t = u[i] - np.log(k - 1 - i)
        log_z, log_1mz = jax.nn.log_sigmoid(t), jax.nn.log_sigmoid(-t)
        xs.append(jnp.exp(log_rem + log_z))
        log_det = log_det + log_z + log_1mz + log_rem
        log_rem = log_rem + log_1mz
    xs.append(jnp.exp(log_rem))
    return jnp.stack(xs), log_det


def _stick_breaking_inverse(x):
    k = x.shape[0]
    us, rem = [], jnp.ones((), x.dtype)
    for i in range(k - 1):
        z = x[i] / rem
        us.append(jnp.log(z) - jnp.log1p(-z) + np.log(k - 1 - i))
        rem = rem - x[i]
    return jnp.stack(us)


def _forward(constraint, u):
    if constraint == "real":
        return u, jnp.zeros((), u.dtype)
    if constraint == "positive":
        return jnp.exp(u), jnp.sum(u)
    if constraint == "positive_ordered":
        return jnp.cumsum(jnp.exp(u)), jnp.sum(u)
    if constraint == "simplex":
        return _stick_breaking(u)
    raise ValueError(f"unknown constraint {constraint!r}")


def _inverse(constraint, x):
    if constraint == "real":
        return x
    if constraint == "positive":
        return jnp.log(x)
    if constraint == "positive_ordered":
        return jnp.log(jnp.concatenate([x[:1], jnp.diff(x)]))
    if constraint == "simplex":
        return _stick_breaking_inverse(x)
    raise ValueError(f"unknown constraint {constraint!r}")


@dataclasses.dataclass(frozen=True)
class Block:
    """One named parameter: its shape, constraint and sizes on both scales."""

    name: str
    shape: tuple
    constraint: str

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=int))

    @property
    def free_size(self):
        return self.size - 1 if self.constraint == "simplex" else self.size


# ----------------------------------------------------------------------------------------
# A posterior: data, reference moments and draws, both log densities, and the transforms


@dataclasses.dataclass(frozen=True, eq=False)
class Posterior:
    """One posteriordb posterior (see the module docstring for the two implementations).

    Attributes:
        name: the posteriordb name, e.g. ``"arma-arma11"``.
        blocks: the parameters in posteriordb's order (name, shape, constraint).
        data: the data the model uses, as float64 NumPy arrays (derived predictors included).
        flat_names: constrained flat names (``beta[1]``, ...), posteriordb's order.
        ref_mean, ref_sd, ref_mcse: reference mean, sd (ddof=1) and MCSE per flat name.
        draws: reference draws on the constrained scale, shape (n, len(flat_names)), or
            None where the package ships none (``mcycle_gp-accel_gp``).
    """

    name: str
    blocks: tuple
    data: dict
    flat_names: tuple
    ref_mean: np.ndarray
    ref_sd: np.ndarray
    ref_mcse: np.ndarray
    draws: np.ndarray | None
    _log_prob: object = dataclasses.field(repr=False, default=None)
    _model: object = dataclasses.field(repr=False, default=None)

    @property
    def dim(self) -> int:
        """Unconstrained dimension d."""
        return sum(b.free_size for b in self.blocks)

    def data_as(self, dtype=None) -> dict:
        """The data as JAX arrays of ``dtype`` (default: JAX's default float)."""
        dtype = dtype or jnp.zeros(()).dtype
        return {k: jnp.asarray(v, dtype) for k, v in self.data.items()}

    def constrain_and_log_det(self, u):
        """(params dict, log|det J|) for an unconstrained vector u of shape (d,)."""
        params, log_det, i = {}, jnp.zeros((), u.dtype), 0
        for b in self.blocks:
            x, ld = _forward(b.constraint, u[i : i + b.free_size])
            params[b.name] = x.reshape(b.shape)
            log_det, i = log_det + ld, i + b.free_size
        return params, log_det

    def constrain(self, u) -> dict:
        """Named constrained parameters for an unconstrained vector u."""
        return self.constrain_and_log_det(u)[0]

    def unconstrain(self, params) -> jax.Array:
        """The unconstrained vector (d,) of a dict of named constrained parameters."""
        parts = [_inverse(b.constraint, jnp.reshape(jnp.asarray(params[b.name]), (-1,))) for b in self.blocks]
        return jnp.concatenate(parts)

    def flatten(self, params) -> jax.Array:
        """Constrained flat vector in ``flat_names`` order."""
        return jnp.concatenate([jnp.reshape(jnp.asarray(params[b.name]), (-1,)) for b in self.blocks])

    def unflatten(self, flat) -> dict:
        """Inverse of :meth:`flatten`."""
        out, i = {}, 0
        for b in self.blocks:
            out[b.name] = flat[i : i + b.size].reshape(b.shape)
            i += b.size
        return out

    def log_prob(self, params):
        """Hand-written log density on the constrained scale (no Jacobian), up to a constant."""
        dtype = jnp.result_type(*jax.tree_util.tree_leaves(params))
        return self._log_prob(params, self.data_as(dtype))

    def logdensity(self, u):
        """Unconstrained log density on R^d: log p(constrain(u)) + log|det J(u)|."""
        params, log_det = self.constrain_and_log_det(u)
        return self._log_prob(params, self.data_as(u.dtype)) + log_det

    def model(self, data):
        """The NumPyro model: call as ``model(posterior.data_as(dtype))``."""
        return self._model(data)

    def unconstrained_draws(self, dtype=np.float64) -> jax.Array:
        """Reference draws mapped to the unconstrained space, shape (n, d)."""
        if self.draws is None:
            raise ValueError(f"{self.name} has no reference draws in this package")
        flat = jnp.asarray(self.draws, dtype)
        return jax.vmap(lambda f: self.unconstrain(self.unflatten(f)))(flat)


def _read_draws(path: Path, flat_names) -> np.ndarray:
    with zipfile.ZipFile(path) as zf:
        (member,) = zf.namelist()
        chains = json.loads(zf.read(member))
    return np.concatenate([np.stack([np.asarray(c[n], np.float64) for n in flat_names], axis=1) for c in chains])


def _entry(root: Path, name: str) -> dict:
    refs = json.loads((root / "references.json").read_text())["posteriors"]
    by_name = {e["name"]: e for e in refs}
    if name not in by_name or name not in SPECS:
        raise ValueError(f"name: unknown posterior {name!r}; expected one of {NAMES}")
    return by_name[name]


def load(name: str, root=None, with_draws: bool = True) -> Posterior:
    """Loads one posterior: data, reference summary, reference draws (where shipped).

    Args:
        name: a posteriordb name from :data:`NAMES`.
        root: the posteriordb folder (default: ``$VIKL_POSTERIORDB`` or ``../shared/posteriordb``).
        with_draws: read the reference draws file (10000 draws) too.
    """
    root = posteriordb_dir(root)
    e = _entry(root, name)
    prep, log_prob, model = SPECS[name]
    data = prep(json.loads((root / e["data_file"]).read_text()))
    blocks = tuple(Block(p["name"], tuple(p["shape"]), p["constraint"]) for p in e["parameters"])
    summ = {s["name"]: s for s in e["reference"]["summary"]}
    names = tuple(e["flat_names"])
    draws = None
    if with_draws and e.get("draws_file"):
        draws = _read_draws(root / e["draws_file"], names)
    post = Posterior(
        name, blocks, data, names,
        np.array([summ[n]["mean"] for n in names]), np.array([summ[n]["sd"] for n in names]),
        np.array([summ[n]["mcse_mean"] for n in names]), draws, log_prob, model,
    )  # fmt: skip
    if post.dim != e["unconstrained_dimension"]:
        raise RuntimeError(f"{name}: dimension {post.dim} != {e['unconstrained_dimension']}")
    return post


# ----------------------------------------------------------------------------------------
# Checks


def value_and_grads(post: Posterior, u, batch_size: int = 500):
    """Log density and gradient at each row of u (n, d), jitted and mapped in batches."""
    f = jax.value_and_grad(post.logdensity)
    return jax.jit(lambda uu: jax.lax.map(f, uu, batch_size=batch_size))(u)


def stein_zscores(u, g):
    """Monte-Carlo z-scores of the Stein identities E[g] = 0 and E[g (u - E u)^T] = -I.

    Args:
        u: draws (n, d) from the target in unconstrained space.
        g: the gradients of the log density (Jacobian included) at u, shape (n, d).

    Returns:
        ``(z_mean, z_cov)`` of shapes (d,) and (d, d): each entry's deviation from its
        exact value divided by its standard error over the draws.
    """
    u, g = np.asarray(u, np.float64), np.asarray(g, np.float64)
    n, d = u.shape
    z_mean = g.mean(0) / (g.std(0, ddof=1) / np.sqrt(n))
    terms = g[:, :, None] * (u - u.mean(0))[:, None, :]
    se = terms.std(0, ddof=1) / np.sqrt(n)
    z_cov = (terms.mean(0) + np.eye(d)) / se
    return z_mean, z_cov


def stein_check(post: Posterior, n_draws=None, seed: int = 0) -> dict:
    """README checks 2 and 3 on the reference draws (or a random subsample of n_draws), float64."""
    with jax.enable_x64(True):
        u = post.unconstrained_draws(np.float64)
        if n_draws is not None and n_draws < u.shape[0]:
            idx = np.random.default_rng(seed).choice(u.shape[0], n_draws, replace=False)
            u = u[np.sort(idx)]
        val, g = value_and_grads(post, u)
        val, g, u = np.asarray(val), np.asarray(g), np.asarray(u)
    finite = bool(np.all(np.isfinite(val)) and np.all(np.isfinite(g)) and np.all(np.isfinite(u)))
    z_mean, z_cov = stein_zscores(u, g)
    return {
        "n": u.shape[0],
        "finite": finite,
        "max_abs_z_mean": float(np.max(np.abs(z_mean))),
        "max_abs_z_cov": float(np.max(np.abs(z_cov))),
        "max_abs_z": float(max(np.max(np.abs(z_mean)), np.max(np.abs(z_cov)))),
    }


def check_points(post: Posterior, n: int = 5, seed: int = 0) -> np.ndarray:
    """A few unconstrained points (float64): reference draws, or jitter around the reference mean."""
    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        if post.draws is not None:
            idx = rng.choice(post.draws.shape[0], n, replace=False)
            flat = jnp.asarray(post.draws[idx], np.float64)
            return np.asarray(jax.vmap(lambda f: post.unconstrain(post.unflatten(f)))(flat))
        u0 = np.asarray(post.unconstrain(post.unflatten(jnp.asarray(post.ref_mean, np.float64))))
    return u0 + 0.1 * rng.standard_normal((n, u0.shape[0]))


def numpyro_agreement(post: Posterior, points) -> float:
    """max |diff - mean diff| over the points, diff = logdensity(u) - (NumPyro log joint + log|det J|)."""
    from numpyro.infer.util import log_density

    diffs = []
    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
        data = post.data_as(np.float64)
        joint = jax.jit(lambda p: log_density(post.model, (data,), {}, p)[0])
        for u in np.asarray(points, np.float64):
            u = jnp.asarray(u)
            params, log_det = post.constrain_and_log_det(u)
            lj = joint(params)
            diffs.append(float(post.logdensity(u)) - float(lj + log_det))
    diffs = np.asarray(diffs)
    return float(np.max(np.abs(diffs - diffs.mean())))


def grad_time_ms(post: Posterior, dtype=np.float64, repeats: int = 5) -> float:
    """Milliseconds per call of the jitted gradient at the reference mean (best of ``repeats``)."""
    with jax.enable_x64(np.dtype(dtype) == np.float64):
        u0 = post.unconstrain(post.unflatten(jnp.asarray(post.ref_mean, dtype)))
        f = jax.jit(jax.grad(post.logdensity))
        jax.block_until_ready(f(u0))
        t0 = time.perf_counter()
        jax.block_until_ready(f(u0))
        calls = max(1, int(0.05 / max(time.perf_counter() - t0, 1e-6)))
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(calls):
                out = f(u0)
            jax.block_until_ready(out)
            best = min(best, (time.perf_counter() - t0) / calls)
    return 1e3 * best


def lv_accuracy(post: Posterior, n: int = 20, seed: int = 0, substeps: int = LV_SUBSTEPS) -> float:
    """Max relative error of the RK4 states against SciPy's solve_ivp (DOP853, rtol 1e-11).

    Evaluated at ``n`` reference draws of ``hudson_lynx_hare-lotka_volterra``.
    """
    from scipy.integrate import solve_ivp

    rng = np.random.default_rng(seed)
    draws = post.draws[rng.choice(post.draws.shape[0], n, replace=False)]
    n_times = post.data["y"].shape[0]
    worst = 0.0
    for row in draws:
        p = post.unflatten(row)
        a, b, c, d = p["theta"]

        def rhs(_, s, a=a, b=b, c=c, d=d):
            return [(a - b * s[1]) * s[0], (-c + d * s[0]) * s[1]]

        ref = solve_ivp(rhs, (0.0, n_times), p["z_init"], method="DOP853", rtol=1e-11, atol=1e-12,
                        t_eval=np.arange(1, n_times + 1)).y.T  # fmt: skip
        with jax.enable_x64(True):
            got = np.asarray(lotka_volterra(jnp.asarray(p["theta"]), jnp.asarray(p["z_init"]), n_times, substeps))
        worst = max(worst, float(np.max(np.abs(got - ref) / np.abs(ref))))
    return worst


def check(post: Posterior, n_draws=None, seed: int = 0, timing: bool = True) -> dict:
    """All checks of one posterior as a table row (Stein, NumPyro agreement, gradient timing)."""
    row = {"posterior": post.name, "d": post.dim}
    if post.draws is not None:
        row.update(stein_check(post, n_draws, seed))
    else:
        pts = check_points(post, 100, seed)
        with jax.enable_x64(True):
            val, g = value_and_grads(post, jnp.asarray(pts))
        row.update(n=0, finite=bool(np.all(np.isfinite(val)) and np.all(np.isfinite(g))), max_abs_z=np.nan)
    row["numpyro_max_abs_diff"] = numpyro_agreement(post, check_points(post, 5, seed))
    if timing:
        row["grad_ms_f64"] = grad_time_ms(post, np.float64)
        row["grad_ms_f32"] = grad_time_ms(post, np.float32)
    return row


def _fmt_row(r):
    z = "n/a (no draws)" if np.isnan(r["max_abs_z"]) else f"{r['max_abs_z']:.2f}"
    cells = [r["posterior"], str(r["d"]), str(r["n"]), str(r["finite"]), z, f"{r['numpyro_max_abs_diff']:.1e}"]
    if "grad_ms_f64" in r:
        cells += [f"{r['grad_ms_f64']:.3f}", f"{r['grad_ms_f32']:.3f}"]
    return "| " + " | ".join(cells) + " |"


def main(argv=None):
    """Command line: runs :func:`check` on the chosen posteriors and prints a Markdown table."""
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.posteriordb",
        description="Checks the ten posteriordb log densities: finite values and gradients at the "
        "reference draws, the Stein identity z-scores (README check 3), agreement of the NumPyro "
        "model with the hand-written density, and milliseconds per jitted gradient on this machine.",
    )
    ap.add_argument("names", nargs="*", help=f"posteriors to check (default: all ten): {', '.join(NAMES)}")
    ap.add_argument("--root", default=None, help=f"posteriordb folder (default: ${ENV_VAR} or {DEFAULT_ROOT})")
    ap.add_argument("--draws", type=int, default=None, help="random subsample of reference draws (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-timing", action="store_true", help="skip the gradient timings")
    ap.add_argument("--lv-accuracy", action="store_true", help="also check the RK4 ODE solver against SciPy")
    args = ap.parse_args(argv)
    head = "| posterior | d | draws | finite | max abs z (Stein) | NumPyro vs hand | grad ms f64 | grad ms f32 |"
    print(head if not args.no_timing else head.rsplit("| grad", 2)[0] + "|")
    print("|" + "---|" * (head.count("|") - 1 - (2 if args.no_timing else 0)))
    for name in args.names or NAMES:
        post = load(name, args.root)
        print(_fmt_row(check(post, args.draws, args.seed, timing=not args.no_timing)), flush=True)
        if args.lv_accuracy and name == "hudson_lynx_hare-lotka_volterra":
            print(f"  RK4 ({LV_SUBSTEPS} steps/year) max relative error vs solve_ivp: {lv_accuracy(post):.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
