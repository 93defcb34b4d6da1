"""Runnable experiments: each answers one question about KL and writes figures plus JSON.

Run one with ``python -m vikl.experiments.<name> [--out DIR] [--seed N] [--quick]``,
list them with ``python -m vikl.experiments`` and run them all with
``python -m vikl.experiments all [--quick]`` (from a clone of the repository,
``python -m experiments...`` runs the same files). Every script writes PNG and PDF
figures and ``<name>.json`` (the numbers the figures show, with analytic values
beside them) to ``out/<name>/`` by default, and is deterministic for a seed.
"""

#: Experiment names in presentation order, with a one-line summary each
#: (the first line of the module's docstring).
EXPERIMENTS = {
    "mode_seeking": "Forward vs reverse KL: a Gaussian fitted to a two-mode 1-D target.",
    "mode_seeking_2d": "Forward vs reverse KL in 2-D: full-rank Gaussian and flow fits to a mixture and a banana.",
    "mean_field": "Mean-field Gaussian fits to a correlated Gaussian: reverse KL shrinks, forward KL inflates.",
    "alpha_sweep": "Renyi alpha from strongly negative to 1: from mass-covering to mode-seeking fits.",
    "distance_vs_divergence": "Squared Euclidean distance between densities vs KL on overlapping and disjoint pairs.",
    "coin_llr": "The per-flip log-likelihood ratio of coin flips converges to KL(p||q).",
    "coding": "Entropy as optimal code length, cross-entropy as a mismatched code, KL as the extra bits.",
    "surprise": "Bayesian surprise: KL between posterior and prior (black swan, Beta-Bernoulli updating).",
    "classifier": "Cross-entropy loss = entropy of the labels + KL(labels||prediction).",
    "vae_digits": "A small VAE on scikit-learn's digits: analytic vs Monte-Carlo KL in the ELBO.",
}

__all__ = ["EXPERIMENTS"]
