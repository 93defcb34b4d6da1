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


@pytest.fixture(autouse=True)
def _mpmath_precision(request):
    """Runs each test at the mpmath precision its module names (``MPMATH_DPS``, else 15).

    mpmath's precision is global: a module that set it at import, or a test that set it,
    changed the references of whatever ran next in that worker (the Tanh log-det reference
    ``1 - tanh(40)^2`` is 0 below 36 digits), so results depended on test order.
    ``workdps`` restores the precision when the test ends.
    """
    import mpmath

    with mpmath.workdps(getattr(request.module, "MPMATH_DPS", 15)):
        yield


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
    "tests/test_batch_invariance.py::test_kl_of_a_big_batch_equals_the_kl_of_its_pieces[Beta-Beta]",
    "tests/test_issue19_residue_gaussian.py::test_extreme_scales_and_locations_match_mpmath[float32-lowrank-diag]",
    # A float64 KL + gradient program of 14 s (Beta-Gamma) to compile; its KL values stay
    # checked against quadrature by the float32 case above.
    "tests/test_cross_kl_continuous.py::test_kl_and_its_gradients_match_torch[Beta-Gamma]",
    # 6-8 s each in the .ci/run of this stop (pytest 14 min 36 s); other pairs, families and
    # the float32 case stay in the default run.
    "tests/test_kl_registry.py::test_every_registered_pair_matches_monte_carlo[Dirichlet-Dirichlet]",
    "tests/test_properties.py::test_monte_carlo_cross_entropy_matches_entropy_plus_kl[Dirichlet]",
    "tests/test_kl_registry.py::test_every_pair_jits_and_has_finite_gradients[Beta-Gamma]",
    "tests/test_families_generic.py::test_stopped_log_prob_has_the_sticking_the_landing_gradient[StudentT]",
    "tests/test_large_concentrations.py::test_beta_and_dirichlet_kl_large_concentrations[float64]",
    # The .ci/run of the last stop took 17 min 20 s of pytest (over the 15-minute line):
    # every parametrized case of 3 s or more in a full run here (2-core VM), except the
    # cheapest case of its test, the headline experiment and the notebooks 03-04.
    "tests/test_batch_invariance.py::test_kl_of_a_big_batch_equals_the_kl_of_its_pieces[LowRankMultivariateNormal-MultivariateNormalDiag]",
    "tests/test_batch_invariance.py::test_kl_of_a_big_batch_equals_the_kl_of_its_pieces[MultivariateNormalDiag-LowRankMultivariateNormal]",
    "tests/test_bijectors_combinators.py::test_chain_matches_numpyro_compose[float64-affine_after_corr]",
    "tests/test_constrained_fit.py::test_save_load_constrained_fit[True]",
    "tests/test_continuous.py::test_densities_moments_cdf_match_scipy[float32-Beta]",
    "tests/test_continuous.py::test_densities_moments_cdf_match_scipy[float32-Exponential]",
    "tests/test_continuous.py::test_densities_moments_cdf_match_scipy[float64-Beta]",
    "tests/test_continuous.py::test_densities_moments_cdf_match_scipy[float64-Exponential]",
    "tests/test_continuous.py::test_jit_vmap_and_finite_gradients_of_log_prob_and_entropy[Beta]",
    "tests/test_continuous.py::test_sampling_shape_and_distribution[Beta]",
    "tests/test_cross_kl_continuous.py::test_kl_and_its_gradients_match_torch[Exponential-Gamma]",
    "tests/test_cross_kl_continuous.py::test_kl_and_its_gradients_match_torch[Gamma-Exponential]",
    "tests/test_cross_kl_continuous.py::test_kl_and_its_gradients_match_torch[Gamma-Gamma]",
    "tests/test_cross_kl_continuous.py::test_kl_matches_quadrature_and_gradients_are_finite[float32-Beta-Exponential]",
    "tests/test_cross_kl_continuous.py::test_kl_matches_quadrature_and_gradients_are_finite[float32-Beta-Normal]",
    "tests/test_cross_kl_continuous.py::test_kl_matches_quadrature_and_gradients_are_finite[float64-Exponential-Gamma]",
    "tests/test_cross_kl_continuous.py::test_kl_matches_quadrature_and_gradients_are_finite[float64-Gamma-Exponential]",
    "tests/test_cross_kl_continuous.py::test_kl_matches_quadrature_and_gradients_are_finite[float64-Gamma-Gamma]",
    "tests/test_cross_pair_extremes.py::test_cross_pair_extremes_match_mpmath[float32-Beta-Gamma]",
    "tests/test_cross_pair_extremes.py::test_cross_pair_extremes_match_mpmath[float64-Beta-Gamma]",
    "tests/test_dirichlet.py::test_kl_vs_mpmath_including_near_equal[float32-base0-0.01]",
    "tests/test_dirichlet.py::test_kl_vs_mpmath_including_near_equal[float64-base0-0.01]",
    "tests/test_dirichlet.py::test_kl_vs_mpmath_including_near_equal[float64-base3-0.3]",
    "tests/test_discrete_near_equal.py::test_large_batch_of_logits_matches_references_and_gradients[float64]",
    "tests/test_experiments.py::test_writes_figures_and_json[alpha_sweep]",
    "tests/test_experiments.py::test_writes_figures_and_json[classifier]",
    "tests/test_experiments.py::test_writes_figures_and_json[distance_vs_divergence]",
    "tests/test_experiments.py::test_writes_figures_and_json[mean_field]",
    "tests/test_experiments.py::test_writes_figures_and_json[surprise]",
    "tests/test_extremes.py::test_dirichlet_kl_with_a_dominant_component[float32-case0]",
    "tests/test_extremes.py::test_dirichlet_kl_with_a_dominant_component[float32-case2]",
    "tests/test_extremes.py::test_dirichlet_kl_with_a_dominant_component[float64-case3]",
    "tests/test_extremes.py::test_dirichlet_kl_with_a_dominant_component[float64-case6]",
    "tests/test_families_generic.py::test_entropy_grad_is_finite[Dirichlet]",
    "tests/test_families_generic.py::test_entropy_matches_monte_carlo[Dirichlet]",
    "tests/test_families_generic.py::test_jit_vmap_grad_of_log_prob[Beta]",
    "tests/test_families_generic.py::test_jit_vmap_grad_of_log_prob[Dirichlet]",
    "tests/test_families_generic.py::test_jit_vmap_grad_of_log_prob[LowRankMultivariateNormal]",
    "tests/test_families_generic.py::test_jit_vmap_grad_of_log_prob[StudentT]",
    "tests/test_families_generic.py::test_sample_shapes_and_log_prob_shapes[Beta]",
    "tests/test_families_generic.py::test_sample_shapes_and_log_prob_shapes[Binomial]",
    "tests/test_families_generic.py::test_sample_shapes_and_log_prob_shapes[Dirichlet]",
    "tests/test_families_generic.py::test_sample_shapes_and_log_prob_shapes[Gamma]",
    "tests/test_families_generic.py::test_stopped_log_prob_has_the_sticking_the_landing_gradient[Laplace]",
    "tests/test_families_generic.py::test_stopped_log_prob_has_the_sticking_the_landing_gradient[MultivariateNormalDiag]",
    "tests/test_flow_bijectors.py::test_flows_integrate_to_one_in_2d[spline]",
    "tests/test_flow_bijectors.py::test_jit_vmap_grad[spline]",
    "tests/test_flow_bijectors.py::test_log_prob_matches_change_of_variables[spline]",
    "tests/test_flow_bijectors.py::test_spline_gradients_are_finite_at_knots_bounds_and_tails[float32]",
    "tests/test_flow_bijectors.py::test_spline_matches_flowjax[float32-8]",
    "tests/test_flows.py::test_shapes_and_inverse[5]",
    "tests/test_grad_at_equal.py::test_gradient_of_cross_family_kl_at_a_common_member_is_zero[float32-Uniform-Beta]",
    "tests/test_grad_at_equal.py::test_gradient_of_cross_family_kl_at_a_common_member_is_zero[float64-Exponential-Gamma]",
    "tests/test_grad_at_equal.py::test_gradient_of_cross_family_kl_at_a_common_member_is_zero[float64-Gamma-Exponential]",
    "tests/test_grad_at_equal.py::test_gradient_of_cross_family_kl_at_a_common_member_is_zero[float64-Uniform-Beta]",
    "tests/test_grad_at_equal.py::test_gradient_of_kl_at_p_equal_q_is_zero[float32-Dirichlet-Dirichlet]",
    "tests/test_grad_at_equal.py::test_gradient_of_kl_at_p_equal_q_is_zero[float32-Gamma-Gamma]",
    "tests/test_grad_at_equal.py::test_gradient_of_kl_at_p_equal_q_is_zero[float32-LowRankMultivariateNormal-LowRankMultivariateNormal]",
    "tests/test_grad_at_equal.py::test_gradient_of_kl_at_p_equal_q_is_zero[float64-Gamma-Gamma]",
    "tests/test_info.py::test_mutual_information_and_conditional_entropy_vs_references[float64]",
    "tests/test_issue19_residue_beta_dirichlet.py::test_beta_extreme_grid_matches_mpmath[float64]",
    "tests/test_issue19_residue_beta_dirichlet.py::test_tiny_concentrations_overflow_to_inf_not_nan[float32-dirichlet]",
    "tests/test_issue19_residue_beta_dirichlet.py::test_tiny_concentrations_overflow_to_inf_not_nan[float64-dirichlet]",
    "tests/test_issue19_residue_beta_dirichlet.py::test_tiny_first_concentration_keeps_the_underflowing_term[float64-10000000000.0-1e+300]",
    "tests/test_issue19_residue_gaussian.py::test_extreme_scales_and_locations_match_mpmath[float32-full-lowrank]",
    "tests/test_issue19_residue_gaussian.py::test_extreme_scales_and_locations_match_mpmath[float32-lowrank-lowrank]",
    "tests/test_issue19_residue_gaussian.py::test_extreme_scales_and_locations_match_mpmath[float64-diag-lowrank]",
    "tests/test_issue19_residue_gaussian.py::test_extreme_scales_and_locations_match_mpmath[float64-lowrank-lowrank]",
    "tests/test_issue19_residue_gaussian.py::test_far_locations_over_tiny_covariances_overflow_to_inf[float64]",
    "tests/test_issue19_residue_gaussian.py::test_lowrank_against_tiny_diag_scale[float32]",
    "tests/test_kl_registry.py::test_every_pair_jits_and_has_finite_gradients[Beta-Exponential]",
    "tests/test_kl_registry.py::test_every_pair_jits_and_has_finite_gradients[Beta-Normal]",
    "tests/test_kl_registry.py::test_every_pair_jits_and_has_finite_gradients[Binomial-Geometric]",
    "tests/test_kl_registry.py::test_every_pair_jits_and_has_finite_gradients[Gamma-Exponential]",
    "tests/test_kl_registry.py::test_every_pair_jits_and_has_finite_gradients[Gamma-Gamma]",
    "tests/test_kl_registry.py::test_every_pair_jits_and_has_finite_gradients[LowRankMultivariateNormal-MultivariateNormalDiag]",
    "tests/test_kl_registry.py::test_every_pair_jits_and_has_finite_gradients[LowRankMultivariateNormal-MultivariateNormal]",
    "tests/test_kl_registry.py::test_every_pair_jits_and_has_finite_gradients[MultivariateNormal-LowRankMultivariateNormal]",
    "tests/test_kl_registry.py::test_every_pair_jits_and_has_finite_gradients[MultivariateNormalDiag-LowRankMultivariateNormal]",
    "tests/test_kl_registry.py::test_every_pair_jits_and_has_finite_gradients[Uniform-Beta]",
    "tests/test_kl_registry.py::test_every_registered_pair_matches_monte_carlo[Beta-Gamma]",
    "tests/test_kl_registry.py::test_every_registered_pair_matches_monte_carlo[LowRankMultivariateNormal-LowRankMultivariateNormal]",
    "tests/test_kl_registry.py::test_every_registered_pair_matches_monte_carlo[LowRankMultivariateNormal-MultivariateNormalDiag]",
    "tests/test_large_concentrations.py::test_dirichlet_kl_three_components[float64]",
    "tests/test_large_concentrations.py::test_gamma_exponential_pairs_at_large_concentration[float64]",
    "tests/test_large_concentrations.py::test_issue_reproducers[float32]",
    "tests/test_large_concentrations.py::test_mixed_precision_pairs_promote[32-64-Beta]",
    "tests/test_large_concentrations.py::test_mixed_precision_pairs_promote[64-32-Beta]",
    "tests/test_lowrank_conditioning.py::test_small_diagonal_family_against_mpmath[float32-2-False-0]",
    "tests/test_lowrank_conditioning.py::test_small_diagonal_family_against_mpmath[float32-4-False-0]",
    "tests/test_lowrank_conditioning.py::test_small_diagonal_family_against_mpmath[float32-4-False-2]",
    "tests/test_lowrank_conditioning.py::test_small_diagonal_family_against_mpmath[float64-2-False-0]",
    "tests/test_lowrank_conditioning.py::test_small_diagonal_family_against_mpmath[float64-2-False-2]",
    "tests/test_math.py::test_derivatives_match_mpmath[float64-0.68]",
    "tests/test_math.py::test_derivatives_match_mpmath[float64-1e-20]",
    "tests/test_mvn.py::test_kl_pairs_vs_numpy_and_torch[float32-diag-lowrank]",
    "tests/test_mvn.py::test_kl_pairs_vs_numpy_and_torch[float32-lowrank-diag]",
    "tests/test_mvn.py::test_kl_pairs_vs_numpy_and_torch[float32-lowrank-lowrank]",
    "tests/test_mvn.py::test_kl_self_is_zero_with_zero_gradient[lowrank]",
    "tests/test_mvn.py::test_lowrank_kl_small_diagonal_against_mpmath[float32-lowrank-lowrank-0.0001-1.0]",
    "tests/test_mvn.py::test_lowrank_kl_small_diagonal_against_mpmath[float32-lowrank-lowrank-1.0-0.0001]",
    "tests/test_mvn.py::test_lowrank_kl_small_diagonal_against_mpmath[float64-lowrank-lowrank-0.0001-1.0]",
    "tests/test_mvn.py::test_lowrank_kl_small_diagonal_against_mpmath[float64-lowrank-lowrank-1.0-0.0001]",
    "tests/test_mvn.py::test_near_equal_lowrank_pairs_vs_mpmath[0.001]",
    "tests/test_notebooks.py::test_notebook_runs[01_information_measures.ipynb]",
    "tests/test_notebooks.py::test_notebook_runs[02_forward_vs_reverse_kl.ipynb]",
    "tests/test_numpyro_model.py::test_bijector_matches_numpyro_biject_to[float32-corr_cholesky]",
    "tests/test_numpyro_model.py::test_bijector_matches_numpyro_biject_to[float64-corr_cholesky]",
    "tests/test_numpyro_model.py::test_log_prob_is_minus_numpyro_potential_energy[float32-zoo]",
    "tests/test_numpyro_model.py::test_log_prob_is_minus_numpyro_potential_energy[float64-zoo]",
    "tests/test_numpyro_model.py::test_log_prob_keeps_leading_axes_and_jits[float64]",
    "tests/test_params.py::test_family_initializers[float64]",
    "tests/test_properties.py::test_kl_nonnegative_and_zero_on_the_diagonal[Dirichlet]",
    "tests/test_properties.py::test_monte_carlo_cross_entropy_matches_entropy_plus_kl[Beta]",
}


# The heaviest files first (their seconds in a full run on the 2-core machine): with
# ``--dist loadfile`` a worker takes whole files in collection order, so a heavy file
# collected last ran alone at the end of the run while the other worker sat idle.
HEAVY_FILES_FIRST = (
    "test_families_generic.py", "test_kl_registry.py", "test_grad_at_equal.py", "test_mvn.py",
    "test_flow_bijectors.py", "test_cross_kl_continuous.py", "test_numpyro_model.py",
    "test_large_concentrations.py", "test_bijectors_structured.py", "test_lowrank_conditioning.py",
    "test_batch_invariance.py", "test_readme.py", "test_extremes.py", "test_validation.py",
    "test_experiments.py",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in SLOW_CASES:
            item.add_marker(pytest.mark.slow)
    rank = {name: i for i, name in enumerate(HEAVY_FILES_FIRST)}
    # A stable sort: the order inside a file, and of the other files, is kept.
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
