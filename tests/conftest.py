"""Shared fixtures and tolerances.

* Strict dtype promotion (as equinox's suite does): mixing float32 and
  float64 arrays, or ints and floats, raises instead of silently promoting.
* ``dtype`` fixture: runs a test once in float32 and once in float64 (with
  ``jax.enable_x64``); use ``tol(dtype)`` for the matching tolerance.
* ``key`` fixture: a fixed PRNG key; split it, never reuse it.
"""

import gc
import os

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")

# Relative tolerances for closed forms against float64 references.
RTOL = {np.dtype("float32"): 2e-5, np.dtype("float64"): 1e-11}


def tol(dtype):
    """Relative tolerance for a closed-form value computed in ``dtype``."""
    return RTOL[np.dtype(dtype)]


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """Runs the test in float32 and, with jax_enable_x64 on, in float64."""
    if request.param == "float64":
        with jax.enable_x64(True):
            yield np.dtype("float64")
    else:
        yield np.dtype("float32")


@pytest.fixture
def key():
    return jax.random.PRNGKey(0)


_RSS_LIMIT_BYTES = 3 * 2**30


def _rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@pytest.fixture(autouse=True, scope="module")
def _free_compiled_programs():
    """Drops JAX's compiled programs after a test module once the worker holds > 3 GB.

    A worker process compiles thousands of programs over the suite; kept, they grew one
    worker to 8 GB of RSS and XLA's CPU compiler then crashed the process (a segfault in
    ``backend_compile_and_load``, seen twice in full runs on the 24 GB CI machine; xdist
    then hung). Clearing after every module kept workers under 5 GB but recompiled shared
    kernels module after module; clearing at a threshold bounds memory at less cost.
    """
    yield
    if _rss_bytes() > _RSS_LIMIT_BYTES:
        jax.clear_caches()
        gc.collect()


def mc_tolerance(stderr, sigmas=5.0):
    """Monte-Carlo tolerance: ``sigmas`` standard errors (fixed seeds make it deterministic)."""
    return sigmas * np.asarray(stderr, np.float64)


# Cases that took 5-170 s each in a full run on the 2-core CI machine (mostly compile
# time of the Beta and Dirichlet KL kernels in float64; experiment and benchmark smoke
# runs); the whole default suite must stay under 15 minutes there. Each keeps a faster
# sibling in the default run (its float32 case, another pair or experiment of the same
# test, the notebooks for the experiments' figures); `-m slow` runs them.
SLOW_CASES = {
    "tests/test_cross_kl_continuous.py::test_kl_matches_quadrature_and_gradients_are_finite[float64-Beta-Beta]",
    "tests/test_cross_kl_continuous.py::test_kl_matches_quadrature_and_gradients_are_finite[float64-Beta-Exponential]",
    "tests/test_large_concentrations.py::test_gradients_finite_at_large_concentrations[float64]",
    "tests/test_grad_at_equal.py::test_gradient_of_kl_at_p_equal_q_is_zero[float64-Beta-Beta]",
    "tests/test_large_concentrations.py::test_mixed_precision_pairs_promote[32-64-Dirichlet]",
    "tests/test_issue19_residue_beta_dirichlet.py::test_dirichlet_sweep_reproducers[float64]",
    "tests/test_batch_invariance.py::test_kl_of_a_big_batch_equals_the_kl_of_its_pieces[Dirichlet-Dirichlet]",
    "tests/test_large_concentrations.py::test_beta_and_dirichlet_entropy_all_concentrations[float64]",
    "tests/test_numpyro_model.py::test_log_prob_is_minus_numpyro_potential_energy[float64-simplex_lkj]",
    "tests/test_benchmarks.py::test_kl_throughput_quick_run",
    "tests/test_dirichlet.py::test_kl_jit_vmap_grad_and_self",
    "tests/test_experiments.py::test_readme_figures_are_figures_the_experiments_write",
    "tests/test_experiments.py::test_writes_figures_and_json[mode_seeking_2d]",
    "tests/test_experiments.py::test_writes_figures_and_json[vae_digits]",
    "tests/test_extremes.py::test_dirichlet_kl_with_a_dominant_component[float64-case0]",
    "tests/test_extremes.py::test_dirichlet_kl_with_a_dominant_component[float64-case2]",
    "tests/test_lowrank_conditioning.py::test_issue_reproducer_rank_above_dim[float64]",
    "tests/test_cross_kl_continuous.py::test_kl_matches_quadrature_and_gradients_are_finite[float64-Beta-Gamma]",
    "tests/test_cross_kl_continuous.py::test_kl_matches_quadrature_and_gradients_are_finite[float64-Beta-Uniform]",
    "tests/test_benchmark_minibatch.py::test_vikl_and_numpyro_fits_reach_the_laplace_reference",
    "tests/test_experiments.py::test_same_seed_same_numbers",
    "tests/test_grad_at_equal.py::test_gradient_of_kl_at_p_equal_q_is_zero[float64-Dirichlet-Dirichlet]",
    "tests/test_kl_registry.py::test_every_pair_jits_and_has_finite_gradients[Dirichlet-Dirichlet]",
    "tests/test_cross_kl_continuous.py::test_kl_matches_quadrature_and_gradients_are_finite[float64-Beta-Normal]",
    "tests/test_cross_kl_continuous.py::test_kl_matches_quadrature_and_gradients_are_finite[float64-Cauchy-Beta]",
    "tests/test_cross_kl_continuous.py::test_vmap_over_batches_matches_batched_evaluation",
    "tests/test_families_generic.py::test_stopped_log_prob_has_the_sticking_the_landing_gradient[LowRankMultivariateNormal]",
    "tests/test_large_concentrations.py::test_mixed_precision_pairs_promote[64-32-Dirichlet]",
    "tests/test_experiments.py::test_run_all_subset",
    "tests/test_experiments.py::test_mode_seeking_2d_numbers",
    "tests/test_experiments.py::test_vae_digits_numbers",
    "tests/test_families_generic.py::test_stopped_log_prob_has_the_sticking_the_landing_gradient[Dirichlet]",
    "tests/test_families_generic.py::test_stopped_log_prob_has_the_sticking_the_landing_gradient[Gamma]",
    "tests/test_families_generic.py::test_stopped_log_prob_has_the_sticking_the_landing_gradient[Beta]",
    "tests/test_kl_registry.py::test_every_pair_jits_and_has_finite_gradients[Beta-Beta]",
    "tests/test_kl_registry.py::test_every_pair_jits_and_has_finite_gradients[LowRankMultivariateNormal-LowRankMultivariateNormal]",
    "tests/test_dirichlet.py::test_kl_vs_torch_and_broadcasting[float64]",
    "tests/test_extremes.py::test_dirichlet_kl_with_a_dominant_component[float64-case1]",
    "tests/test_extremes.py::test_dirichlet_kl_with_a_dominant_component[float64-case4]",
    "tests/test_grad_at_equal.py::test_gradient_of_kl_at_p_equal_q_is_zero[float64-LowRankMultivariateNormal-LowRankMultivariateNormal]",
    "tests/test_dirichlet.py::test_kl_vs_mpmath_including_near_equal[float64-base2-0.001]",
    "tests/test_batch_invariance.py::test_kl_of_a_big_batch_equals_the_kl_of_its_pieces[Beta-Gamma]",
    "tests/test_batch_invariance.py::test_kl_of_a_big_batch_equals_the_kl_of_its_pieces[LowRankMultivariateNormal-LowRankMultivariateNormal]",
    "tests/test_numpyro_model.py::test_log_prob_is_minus_numpyro_potential_energy[float32-simplex_lkj]",
    "tests/test_issue19_residue_beta_dirichlet.py::test_dirichlet_sweep_reproducers[float32]",
    "tests/test_large_concentrations.py::test_beta_and_dirichlet_entropy_all_concentrations[float32]",
    "tests/test_cross_kl_continuous.py::test_kl_matches_quadrature_and_gradients_are_finite[float32-Beta-Beta]",
    "tests/test_extremes.py::test_beta_kl_gradients_finite_in_every_regime",
    "tests/test_batch_invariance.py::test_kl_of_a_big_batch_equals_the_kl_of_its_pieces[Beta-Beta]",
    "tests/test_issue19_residue_gaussian.py::test_extreme_scales_and_locations_match_mpmath[float32-lowrank-diag]",
    # float64 KL + gradient programs of 6 s (Beta-Beta) and 14 s (Beta-Gamma) to compile;
    # their KL values stay checked against quadrature by the float32 cases above.
    "tests/test_cross_kl_continuous.py::test_kl_and_its_gradients_match_torch[Beta-Gamma]",
    "tests/test_cross_kl_continuous.py::test_kl_and_its_gradients_match_torch[Beta-Beta]",
    # 6-8 s each in the .ci/run of this stop (pytest 14 min 36 s); other pairs, families and
    # the float32 case stay in the default run.
    "tests/test_kl_registry.py::test_every_registered_pair_matches_monte_carlo[Dirichlet-Dirichlet]",
    "tests/test_properties.py::test_monte_carlo_cross_entropy_matches_entropy_plus_kl[Dirichlet]",
    "tests/test_kl_registry.py::test_every_pair_jits_and_has_finite_gradients[Beta-Gamma]",
    "tests/test_families_generic.py::test_stopped_log_prob_has_the_sticking_the_landing_gradient[StudentT]",
    "tests/test_large_concentrations.py::test_beta_and_dirichlet_kl_large_concentrations[float64]",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in SLOW_CASES:
            item.add_marker(pytest.mark.slow)
