"""Bayesian logistic regression on scikit-learn's breast-cancer data with vikl.Posterior.

569 tumours x 30 features, standardized, plus an intercept; Normal(0, 1) prior on the 31
coefficients; mean-field Gaussian q; minibatches of 64 rows per step.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_breast_cancer

import vikl

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--num-steps", type=int, default=20_000, help="Adam steps per fit (default 20000)")
num_steps = parser.parse_args().num_steps

data = load_breast_cancer()
x = (data.data - data.data.mean(0)) / data.data.std(0)
x = np.hstack([np.ones((len(x), 1)), x]).astype(np.float32)      # intercept column
y = data.target.astype(np.float32)                                # 1 = benign
d = x.shape[1]


def log_likelihood(theta, obs):                                  # ONE observation
    x_i, y_i = obs
    logit = jnp.dot(x_i, theta)
    return y_i * jax.nn.log_sigmoid(logit) + (1.0 - y_i) * jax.nn.log_sigmoid(-logit)


posterior = vikl.Posterior(vikl.Normal(jnp.zeros(d), 1.0), log_likelihood,
                           (jnp.asarray(x), jnp.asarray(y)), batch_size=64)
q0 = vikl.Normal(jnp.zeros(d), 0.1 * jnp.ones(d))                 # mean-field
adam = optax.adam(optax.exponential_decay(0.02, num_steps, 0.01))    # 0.02 -> 2e-4
res = vikl.fit(q0, posterior, optimizer=adam, num_steps=num_steps, key=jax.random.key(0),
               progress=False)
q = res.distribution

print(posterior)
print(f"closed-form prior KL used: {bool(res.trace['prior_kl_analytic'][-1])}")
print(f"-ELBO (mean of the last 1000 steps): {res.losses[-1000:].mean():.1f} nats")
names = ["intercept", *data.feature_names]
top = np.argsort(-np.abs(np.asarray(q.loc)))[:5]
for i in top:
    print(f"  {names[i]:<22s} {float(q.loc[i]):+.2f} +- {float(q.scale[i]):.2f}")
theta = q.sample(jax.random.key(1), (2000,))                      # posterior draws
p_benign = jax.nn.sigmoid(jnp.asarray(x) @ theta.T).mean(1)       # posterior predictive
print(f"training accuracy of the posterior predictive: {float(((p_benign > 0.5) == y).mean()):.3f}")

full = vikl.fit(q0, vikl.Posterior(vikl.Normal(jnp.zeros(d), 1.0), log_likelihood,
                                   (jnp.asarray(x), jnp.asarray(y))),
                optimizer=adam, num_steps=num_steps, key=jax.random.key(0), progress=False)
gap = np.abs(np.asarray(q.loc) - np.asarray(full.distribution.loc)) / np.asarray(full.distribution.scale)
print(f"minibatch vs full-data fit: max |mean difference| = {gap.max():.2f} posterior sd")
