"""Construction-time validation of every family's parameters, of ``sample_shape`` and of ints.

Walks every exported family and every one of its parameters (issue 19 items
10 and 17): non-finite values are refused with a message naming the argument
(``-inf`` logits, meaning probability 0, are the documented exception); a
required parameter may not be ``None``; the smallest normal float is a valid
scale and a subnormal one is refused with an explanation; ``sample_shape`` is
validated the same way for every family; and ``vikl._validate.check_int`` is
the one integer validator.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import vikl
from tests.families import EXAMPLES
from vikl import families
from vikl._base import check_sample_shape
from vikl._validate import IntTypeError, check_int

KEY = jax.random.PRNGKey(0)


def _f(x):
    """``x`` as an array of the default float dtype (read when the test runs)."""
    return jnp.asarray(np.asarray(x, np.float64), jnp.zeros(()).dtype)


# One instance per family and parameterization; built inside each test so the
# dtype fixture's x64 setting applies.
INSTANCES = {name: ctors[0] for name, ctors in EXAMPLES.items()}
INSTANCES.update({
    "StudentT(all params)": lambda: vikl.StudentT(_f(5.0), _f(0.3), _f(1.4)),
    "Categorical(logits)": lambda: vikl.Categorical(logits=_f([0.1, -0.4, 0.3])),
    "Bernoulli(logits)": lambda: vikl.Bernoulli(logits=_f(0.3)),
    "Binomial(logits)": lambda: vikl.Binomial(_f(5.0), logits=_f(0.3)),
    "Geometric(logits)": lambda: vikl.Geometric(logits=_f(0.3)),
    "Mixture(logits)": lambda: vikl.Mixture(_f([0.1, 0.2]), vikl.Normal(_f([0.0, 1.0]), _f(1.0))),
    "Mixture(weights)": lambda: vikl.Mixture(
        weights=_f([0.4, 0.6]), components=vikl.Normal(_f([0.0, 1.0]), _f(1.0))
    ),
    "Empirical": lambda: vikl.Empirical(_f([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])),
    "RealNVP": lambda: vikl.RealNVP.initialize(
        2, KEY, num_layers=1, hidden_size=3, dtype=jnp.zeros(()).dtype
    ),
    "SplineFlow": lambda: vikl.SplineFlow.initialize(
        2, KEY, num_layers=1, hidden_size=3, dtype=jnp.zeros(()).dtype
    ),
    "InverseAutoregressiveFlow": lambda: vikl.InverseAutoregressiveFlow.initialize(
        2, KEY, num_layers=1, hidden_size=3, dtype=jnp.zeros(()).dtype
    ),
})


def _public(field: str) -> str:
    return field.lstrip("_")


def _kwargs(d) -> dict:
    """The constructor arguments of ``d`` (public names; fields that are None left out)."""
    cls = type(d)
    return {
        _public(k): getattr(d, k)
        for k in cls._child_fields + cls._static_fields
        if getattr(d, k) is not None
    }


def _params(d):
    """``(public name, constraint)`` of the parameters ``d`` was given."""
    return [
        (_public(k), c) for k, c in type(d)._param_constraints.items() if getattr(d, k) is not None
    ]


def _with_first_entry(value, bad):
    """A copy of ``value`` (same dtype and shape) whose first entry is ``bad``."""
    a = np.array(value, dtype=np.float64)
    a.reshape(-1)[0] = bad
    return jnp.asarray(a, dtype=jnp.asarray(value).dtype)


def _cases(fn):
    return [(name, fn) for name in INSTANCES]


def _has_nan(fn) -> bool:
    try:
        return bool(np.isnan(np.asarray(fn(), np.float64)).any())
    except NotImplementedError:  # e.g. no closed-form entropy, Empirical.log_prob
        return False


def test_every_exported_family_is_walked():
    """A family added to vikl without an entry here makes this fail."""
    exported = {
        getattr(vikl, n) for n in vikl.__all__
        if isinstance(getattr(vikl, n), type) and issubclass(getattr(vikl, n), vikl.Distribution)
    } - {vikl.Distribution}
    walked = {type(make()) for make in INSTANCES.values()}
    assert exported <= walked, sorted(c.__name__ for c in exported - walked)


# ------------------------------------------------------------ non-finite parameters
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan], ids=["+inf", "-inf", "nan"])
@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_non_finite_parameters_are_rejected_or_documented(name, bad, dtype):
    """Every parameter of every family, fed +inf, -inf and NaN (issue 19 item 10).

    Refused with ``"<Family>: <param> must be ..."``, except logits of ``-inf``
    (probability 0) and scalar log-odds of ``+inf`` (probability 1), which must
    then give NaN-free values.
    """
    d0 = INSTANCES[name]()
    cls = type(d0)
    key_p, key_s = jax.random.split(KEY)
    for pname, c in _params(d0):
        kw = _kwargs(d0)
        kw[pname] = _with_first_entry(kw[pname], bad)
        allowed = c.name == "logits_vector" and bad == -np.inf
        allowed |= c.name == "logit" and not np.isnan(bad) and not (
            cls is vikl.Geometric and bad == -np.inf  # p = 0: never succeeds, refused
        )
        if not allowed:
            with pytest.raises(ValueError, match=rf"^{cls.__name__}: {pname} must "):
                cls(**kw)
            continue
        d = cls(**kw)
        x = d0.sample(key_p, (5,))  # only logit families get here: cheap samplers
        assert not _has_nan(d.entropy), (pname, bad)
        assert not _has_nan(lambda d=d, x=x: d.log_prob(x)), (pname, bad)
        assert not _has_nan(lambda d=d: d.sample(key_s, (5,))), (pname, bad)


def test_error_messages_count_the_non_finite_values():
    with pytest.raises(ValueError, match=r"Normal: loc must be finite real numbers \(not NaN or "
                       r"\+-inf\); got 1 \+inf, 1 -inf value\(s\) \(shape \(3,\)\)"):
        vikl.Normal(jnp.array([jnp.inf, 0.0, -jnp.inf]), 1.0)
    with pytest.raises(ValueError, match=r"Categorical: logits must be .* got 1 \+inf value"):
        vikl.Categorical(logits=jnp.array([jnp.inf, 0.0]))
    with pytest.raises(ValueError, match=r"Binomial: total_count must be integers >= 0 \(finite\)"):
        vikl.Binomial(jnp.inf, probs=0.5)
    with pytest.raises(ValueError, match=r"LowRankMultivariateNormal: cov_factor must be finite"):
        vikl.LowRankMultivariateNormal(jnp.zeros(2), jnp.array([[1.0], [-jnp.inf]]), jnp.ones(2))
    with pytest.raises(ValueError, match=r"Empirical: samples must be finite .* got 1 \+inf"):
        vikl.Empirical(jnp.array([[0.0], [jnp.inf]]))


@pytest.mark.parametrize("make", [
    lambda x: vikl.Categorical(logits=x),
    lambda x: vikl.Mixture(x, vikl.Normal(jnp.zeros(2), 1.0)),
])
def test_logit_vectors_need_one_finite_entry(make):
    """``-inf`` marks a probability of 0, but not every entry can be 0 (softmax is NaN)."""
    neg = -jnp.inf
    with pytest.raises(ValueError, match=r"logits must be .* 1 vector\(s\) with no finite entry"):
        make(jnp.array([[0.0, neg], [neg, neg]]))
    d = make(jnp.array([0.0, neg]))  # a probability of exactly 0 is fine
    assert np.allclose(np.asarray(jax.nn.softmax(jnp.array([0.0, neg]))), [1.0, 0.0])
    lp = d.log_prob(jnp.array(0.0)) if isinstance(d, vikl.Categorical) else d.log_prob(0.3)
    assert np.isfinite(float(lp))


@pytest.mark.parametrize("make, pname", [
    (lambda: vikl.Dirichlet(jnp.ones(0)), "concentration"),
    (lambda: vikl.Dirichlet(jnp.ones((3, 0))), "concentration"),
    (lambda: vikl.Categorical(probs=jnp.ones(0)), "probs"),
    (lambda: vikl.Categorical(logits=jnp.zeros(0)), "logits"),
    (lambda: vikl.MultivariateNormalDiag(jnp.zeros(0), jnp.ones(0)), "loc"),
    (lambda: vikl.MultivariateNormal(jnp.zeros(0), scale_tril=jnp.zeros((0, 0))), "loc"),
    (lambda: vikl.Mixture(weights=jnp.ones(0), components=vikl.Normal(jnp.zeros(0), 1.0)), "weights"),
])
def test_empty_event_axes_are_rejected(make, pname):
    """An empty Dirichlet (zero categories) is not a distribution (its entropy was NaN)."""
    with pytest.raises(ValueError, match=rf"{pname} must have at least one entry along its last axis"):
        make()


def test_empty_batches_stay_allowed():
    d = vikl.Dirichlet(jnp.ones((0, 3)))
    assert d.batch_shape == (0,) and d.sample(KEY, (2,)).shape == (2, 0, 3)


@pytest.mark.parametrize("wname", ["w1", "b1", "w2", "b2", "w3", "b3"])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan], ids=["+inf", "-inf", "nan"])
def test_flow_weights_must_be_finite(wname, bad):
    f = vikl.RealNVP.initialize(2, KEY, num_layers=2, hidden_size=3)
    layers = [dict(layer) for layer in f.weights]
    layers[1][wname] = _with_first_entry(layers[1][wname], bad)
    with pytest.raises(ValueError, match=rf"RealNVP: weights\[1\]\['{wname}'\] must be finite"):
        vikl.RealNVP(f.loc, f.scale, layers)


@pytest.mark.parametrize("value", [np.inf, np.nan, 0.0, -1.0, True, "3"])
def test_flow_max_log_scale_must_be_finite_positive(value):
    f = vikl.RealNVP.initialize(2, KEY, num_layers=1, hidden_size=3)
    with pytest.raises(ValueError, match="RealNVP: max_log_scale must be a finite number > 0"):
        vikl.RealNVP(f.loc, f.scale, f.weights, max_log_scale=value)


def test_checks_skip_traced_values():
    """Under jit values are unknown: construction works, checks do not run (documented)."""
    jax.jit(lambda loc: vikl.Normal(loc, 1.0).log_prob(0.0))(jnp.inf)  # no error raised
    with pytest.raises(ValueError, match="loc must be finite"):  # while eagerly it is refused
        vikl.Normal(jnp.inf, 1.0)
    f = vikl.RealNVP.initialize(2, KEY, num_layers=1, hidden_size=3)
    jax.jit(lambda g: g.log_prob(jnp.zeros(2)))(f)  # weights as tracers: no check, no error


# ------------------------------------------------------------ required parameters
@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_none_for_a_parameter_is_rejected(name):
    """``Normal(None, 1.0)`` and its kind: a clear error naming the argument (item 17)."""
    d0 = INSTANCES[name]()
    cls = type(d0)
    for pname, _ in _params(d0):
        kw = _kwargs(d0)
        kw[pname] = None
        # One-of arguments (probs/logits, scale_tril/covariance_matrix/...) say so.
        one_of = "_" + pname in cls._optional_params or pname == "scale_tril"
        match = r"pass exactly one of" if one_of else rf"^{cls.__name__}: {pname} is required; got None"
        with pytest.raises(ValueError, match=match):
            cls(**kw)


def test_parameters_with_defaults_may_be_omitted_but_not_none():
    assert float(vikl.StudentT(3.0).scale) == 1.0
    with pytest.raises(ValueError, match="StudentT: loc is required; got None"):
        vikl.StudentT(3.0, None)


# ------------------------------------------------------------ tiny positive values
def _positive_params(d):
    return [(p, c) for p, c in _params(d) if c.name in ("positive", "positive_vector", "lower_cholesky")]


def _filled(value, c, v):
    """``value``'s shape and dtype, every entry (the diagonal for a Cholesky factor) set to ``v``."""
    value = np.asarray(value)  # built in NumPy: XLA arithmetic would flush a subnormal v to 0
    if c.name == "lower_cholesky":
        return jnp.asarray(v * np.eye(value.shape[-1], dtype=value.dtype))
    return jnp.asarray(np.full(value.shape, v, value.dtype))


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_smallest_normal_is_valid_and_subnormal_is_explained(name, dtype):
    """Any value >= the smallest normal float passes; a subnormal one gets the reason (item 17).

    1e-38 in float32 is subnormal (< 1.1755e-38): XLA flushes it to zero, so it
    used to fail ``x > 0`` with the self-contradictory "must be > 0; got min 1e-38".
    """
    d0 = INSTANCES[name]()
    cls = type(d0)
    for pname, c in _positive_params(d0):
        value = jnp.asarray(_kwargs(d0)[pname])
        tiny = float(jnp.finfo(value.dtype).tiny)
        kw = _kwargs(d0)
        kw[pname] = _filled(value, c, tiny)
        d = cls(**kw)
        assert np.isclose(float(jnp.max(getattr(d, pname))), tiny, rtol=0)
        kw[pname] = _filled(value, c, tiny / 8)
        assert float(np.asarray(kw[pname]).max()) > 0  # really subnormal, not 0
        with pytest.raises(ValueError, match=rf"^{cls.__name__}: {pname} must .* subnormal.*flushes"):
            cls(**kw)


def test_float32_1e38_message():
    with pytest.raises(ValueError, match=r"got min 1e-38.* 1 value\(s\) are subnormal \(0 < value < "
                       r"1\.17549e-38, the smallest normal float32\)"):
        vikl.Normal(jnp.float32(0.0), jnp.float32(1e-38))
    assert float(vikl.Normal(jnp.float32(0.0), jnp.float32(2e-38)).scale) == np.float32(2e-38)


@pytest.mark.parametrize("scale_kind", ["tiny", "2tiny", "1e-30"])
def test_tiny_scales_give_right_entropies(scale_kind, dtype):
    """Normal, Laplace, Exponential and HalfNormal entropies at tiny scales vs mpmath (50 digits)."""
    mpmath.mp.dps = 50
    tiny = float(jnp.finfo(dtype).tiny)
    s = {"tiny": tiny, "2tiny": 2 * tiny, "1e-30": 1e-30}[scale_kind]
    s = float(np.asarray(s, dtype))  # the value actually stored
    ms = mpmath.mpf(s)
    cases = [
        (vikl.Normal(jnp.asarray(0.0, dtype), jnp.asarray(s, dtype)),
         mpmath.log(ms) + mpmath.log(2 * mpmath.pi * mpmath.e) / 2),
        (vikl.Laplace(jnp.asarray(0.0, dtype), jnp.asarray(s, dtype)), 1 + mpmath.log(2 * ms)),
        (vikl.Exponential(jnp.asarray(1 / s if 1 / s < np.finfo(dtype).max else 1.0, dtype)), None),
        (vikl.HalfNormal(jnp.asarray(s, dtype)),
         mpmath.log(ms) + mpmath.log(mpmath.pi * mpmath.e / 2) / 2),
    ]
    rtol = {np.dtype("float32"): 2e-6, np.dtype("float64"): 1e-13}[np.dtype(dtype)]
    for d, ref in cases:
        got = float(d.entropy())
        if ref is None:  # Exponential: H = 1 - log(rate)
            ref = 1 - mpmath.log(mpmath.mpf(float(d.rate)))
        assert math.isclose(got, float(ref), rel_tol=rtol), (type(d).__name__, got, ref)


# ------------------------------------------------------------ sample_shape
@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_sample_shape_is_validated_for_every_family(name):
    """One int n means (n,); negative or non-integer entries raise naming sample_shape (item 17)."""
    d = INSTANCES[name]()
    tail = tuple(d.batch_shape) + tuple(d.event_shape)
    for shape, want in [(np.int64(3), (3,)), ([2, np.int32(2)], (2, 2)), (0, (0,))]:
        assert jax.eval_shape(lambda k, s=shape: d.sample(k, s), KEY).shape == want + tail
    if not isinstance(d, vikl.Empirical):  # no log_prob
        x, lp = jax.eval_shape(lambda k: d.sample_and_log_prob(k, 3), KEY)
        assert x.shape == (3,) + tail and lp.shape == (3,) + tuple(d.batch_shape)
    # The same draws, whichever spelling (one compiled program, then compared).
    a, b = jax.jit(lambda k: (d.sample(k, 3), d.sample(k, (3,))))(KEY)
    assert a.shape == (3,) + tail
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for bad in [(-1,), -1, (2, -3)]:
        with pytest.raises(ValueError, match=r"sample_shape must be a tuple of non-negative ints"):
            d.sample(KEY, bad)
    for bad in [2.0, (2.5,), True, "3", None, (jnp.array([2]),)]:
        with pytest.raises(TypeError, match=r"sample_shape must be a tuple of non-negative ints"):
            d.sample(KEY, bad)
    for method in (d.sample_and_log_prob, d._sample_and_stopped_log_prob):
        with pytest.raises(ValueError, match="negative entry -2"):
            method(KEY, (-2,))


def test_sample_shape_checked_for_user_families():
    """A family defined outside vikl (overriding ``sample``) gets the same check."""

    class Logistic(vikl.Distribution):
        loc: jax.Array = vikl.param(vikl.constraints.real)

        def sample(self, key, sample_shape=()):
            return self.loc + jax.random.logistic(key, sample_shape + self.batch_shape)

    d = Logistic(0.0)
    assert d.sample(KEY, 4).shape == (4,)
    with pytest.raises(ValueError, match="sample_shape"):
        d.sample(KEY, (-4,))


def test_check_sample_shape_returns_python_ints():
    out = check_sample_shape((np.int64(2), jnp.array(3)))
    assert out == (2, 3) and all(type(n) is int for n in out)
    assert check_sample_shape(0) == (0,) and check_sample_shape([]) == ()


# ------------------------------------------------------------ the one int validator
@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3), np.array(3), jnp.array(3, jnp.int32)])
def test_check_int_accepts_integer_scalars(value):
    out = check_int("num_steps", value)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize("value", [True, np.bool_(True), 3.0, np.float32(3.0), jnp.array(3.0),
                                   np.array([3]), "3", None, 3 + 0j])
def test_check_int_rejects_non_integers(value):
    with pytest.raises(TypeError, match=r"^fit: num_steps must be an int >= 1; got") as info:
        check_int("num_steps", value, where="fit")
    assert isinstance(info.value, ValueError) and isinstance(info.value, IntTypeError)


def test_check_int_minimum_and_tracers():
    assert check_int("n", 0, minimum=0) == 0
    with pytest.raises(ValueError, match=r"^n must be an int >= 2; got 1$"):
        check_int("n", np.int64(1), minimum=2)
    with pytest.raises(TypeError, match="known before tracing"):
        jax.jit(lambda n: check_int("n", n))(3)


@pytest.mark.parametrize("make", [
    lambda n: families.mean_field(n),
    lambda n: families.full_rank(n),
    lambda n: families.low_rank(n, n, KEY),
    lambda n: families.gaussian_mixture(n, n, KEY),
    lambda n: families.real_nvp(n, KEY, num_layers=n, hidden_size=n),
    lambda n: families.categorical(n),
    lambda n: vikl.RealNVP.initialize(n, KEY, num_layers=n, hidden_size=n),
])
def test_families_accept_numpy_and_jax_integers(make):
    """``families.mean_field(np.int64(3))`` was rejected (item 17); floats still are."""
    a, b, c = make(np.int64(3)), make(jnp.array(3)), make(3)
    for d in (a, b):
        assert d.event_shape == c.event_shape and d.batch_shape == c.batch_shape
    with pytest.raises(ValueError, match=r"must be an int >= 1; got 3\.0"):
        make(3.0)
    with pytest.raises(ValueError, match=r"must be an int >= 1; got 0"):
        make(0)


def test_empirical_event_ndims_accepts_numpy_ints():
    d = vikl.Empirical(jnp.zeros((4, 2, 3)), event_ndims=np.int64(1))
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    with pytest.raises(ValueError, match=r"Empirical: event_ndims must be an int >= 0; got -1"):
        vikl.Empirical(jnp.zeros((4, 2)), event_ndims=-1)
