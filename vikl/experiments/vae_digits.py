"""A small VAE on scikit-learn's digits: analytic vs Monte-Carlo KL in the ELBO.

Data: the 1,797 8x8 digit images bundled with scikit-learn (no download),
binarized at half intensity; 1,500 for training, the rest held out.
Model: encoder q(z|x) = MultivariateNormalDiag(mu(x), sigma(x)) with a 2-D
latent z, prior p(z) = N(0, I), decoder p(x|z) = Bernoulli(logits(z)) per pixel
(one hidden layer of 128 tanh units each way).

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) ‖ p(z))      (nats per image)

Two runs from the same initial weights and random stream differ only in the
KL term: the closed form ``vikl.kl_divergence(q, prior)`` versus the one-sample
Monte-Carlo term ``log q(z|x) - log p(z)`` at the z used for the
reconstruction. Both give unbiased ELBO estimates and both train to the same
ELBO. The analytic term removes the KL's own noise, but the Monte-Carlo term
is correlated with the reconstruction term at the same z, so which estimate
(and gradient) is less noisy is an empirical question: the JSON measures both.
The figures show the negative ELBO and the KL term over training, test
reconstructions and the 2-D latent map; the JSON holds the final test ELBOs,
the analytic KL next to ``vikl.estimate_kl`` (Monte Carlo, with its standard
error), and the spread of the ELBO estimate and of its gradient under both KL
terms.
Needs scikit-learn (``pip install vikl[experiments]``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import matplotlib as mpl
import numpy as np
import optax

import vikl
from vikl import plotting as vp
from vikl.experiments import _common

NAME = "vae_digits"

LATENT, HIDDEN, PIXELS = 2, 128, 64
BATCH, LEARNING_RATE = 128, 2e-3
NUM_TRAIN = 1500


def load_data(seed: int):
    """Binarized digits, shuffled with ``seed``: (x_train, y_train, x_test, y_test)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data >= 8.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    perm = np.random.default_rng(seed).permutation(len(x))
    x, y = x[perm], y[perm]
    return x[:NUM_TRAIN], y[:NUM_TRAIN], x[NUM_TRAIN:], y[NUM_TRAIN:]


def _dense(key, n_in, n_out):
    w = jax.random.normal(key, (n_in, n_out), jnp.float32) * jnp.sqrt(jnp.float32(1.0 / n_in))
    return {"w": w, "b": jnp.zeros((n_out,), jnp.float32)}


def init_params(key):
    """Encoder and decoder weights (one hidden tanh layer each)."""
    k = jax.random.split(key, 4)
    return {"enc1": _dense(k[0], PIXELS, HIDDEN), "enc2": _dense(k[1], HIDDEN, 2 * LATENT),
            "dec1": _dense(k[2], LATENT, HIDDEN), "dec2": _dense(k[3], HIDDEN, PIXELS)}


def _layer(p, x):
    return x @ p["w"] + p["b"]


def encode(params, x):
    """q(z|x) as a batched MultivariateNormalDiag."""
    h = jnp.tanh(_layer(params["enc1"], x))
    out = _layer(params["enc2"], h)
    loc, raw = out[..., :LATENT], out[..., LATENT:]
    return vikl.MultivariateNormalDiag(loc, jax.nn.softplus(raw) + 1e-4)


def decode_logits(params, z):
    """Bernoulli logits of the 64 pixels given z."""
    return _layer(params["dec2"], jnp.tanh(_layer(params["dec1"], z)))


def prior():
    return vikl.MultivariateNormalDiag(jnp.zeros((LATENT,), jnp.float32), jnp.ones((LATENT,), jnp.float32))


def elbo_terms(params, x, key, mc_weight):
    """Per-image one-sample reconstruction term and KL term (nats).

    ``mc_weight`` = 0 uses the analytic ``KL(q ‖ prior)``; 1 uses the one-sample
    Monte-Carlo term ``log q(z|x) - log p(z)`` at the same z as the
    reconstruction. (A traced weight, so both runs share one compiled program;
    the unused term gets a zero gradient.)
    """
    q = encode(params, x)
    z = q.sample(key)
    rec = jnp.sum(vikl.Bernoulli(logits=decode_logits(params, z)).log_prob(x), axis=-1)
    analytic = vikl.kl_divergence(q, prior())
    mc = q.log_prob(z) - prior().log_prob(z)
    return rec, mc_weight * mc + (1 - mc_weight) * analytic, analytic


_OPTIMIZER = optax.adam(LEARNING_RATE)
_MC_WEIGHT = {"analytic": 0.0, "mc": 1.0}


def _loss(params, target, key):
    """The training objective for ``vikl.fit_step``: minibatch -ELBO, and the KL terms as aux."""
    data, mc_weight = target
    k_batch, k_z = jax.random.split(key)
    x = data[jax.random.randint(k_batch, (BATCH,), 0, data.shape[0])]
    rec, kl_term, analytic = elbo_terms(params, x, k_z, mc_weight)
    return -jnp.mean(rec - kl_term), {"kl_term": jnp.mean(kl_term), "analytic_kl": jnp.mean(analytic)}


@jax.jit
def _train_chunk(state, target, keys):
    def step(state, key):
        state, loss, aux = vikl.fit_step(state, target, key=key)
        return state, (loss, aux["kl_term"], aux["analytic_kl"])

    return jax.lax.scan(step, state, keys)


def train(params, x_train, key, kl: str, num_steps: int, progress: bool, label: str):
    """Adam on the negative ELBO; returns params and per-step (loss, KL term, analytic KL).

    A user loop over vikl's public step: ``vikl.fit_init`` holds the network
    weights and Adam's state, ``vikl.fit_step`` advances them, with the data
    and the KL weight as the step's target (arguments, not constants) and
    this experiment's own key per step. Runs ``lax.scan`` over chunks of 250
    steps (one compiled program for both KL kinds); the progress bar updates
    between chunks.
    """
    target = (jnp.asarray(x_train), jnp.float32(_MC_WEIGHT[kl]))
    keys = jax.random.split(key, num_steps)
    size = 250
    state, records = vikl.fit_init(params, objective=_loss, optimizer=_OPTIMIZER, key=key), []
    bar = _progress(num_steps, label, progress)
    for start in range(0, num_steps, size):
        chunk_keys = keys[start:start + size]
        state, rec = _train_chunk(state, target, chunk_keys)
        records.append(rec)
        if bar is not None:
            bar.update(int(chunk_keys.shape[0]))
            bar.set_postfix(loss=f"{float(rec[0][-1]):.2f}")
    if bar is not None:
        bar.close()
    loss, kl_term, exact_kl = (np.concatenate([np.asarray(r[i]) for r in records]) for i in range(3))
    return state.params, {"neg_elbo": loss, "kl_term": kl_term, "analytic_kl": exact_kl}


def _progress(total, label, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, leave=False)


@functools.partial(jax.jit, static_argnames="num_samples")
def _evaluate(params, x, k_elbo, k_est, num_samples):
    q = encode(params, x)
    kl = vikl.kl_divergence(q, prior())
    estimate = vikl.estimate_kl(q, prior(), k_est, num_samples=4096)

    def terms(k):
        rec, mc, _ = elbo_terms(params, x, k, 1.0)
        return rec, mc

    keys = jax.random.split(k_elbo, num_samples)
    rec, mc = jax.vmap(terms)(keys)  # (S, N) each
    spread = {"analytic": jnp.std(jnp.mean(rec - kl, axis=1)), "mc": jnp.std(jnp.mean(rec - mc, axis=1))}

    def grad_variance(mc_weight):
        # Total variance (summed over all weights) of the gradient of the test-set mean
        # negative ELBO across draws of z.
        def grad(k):
            return jax.grad(lambda p: -jnp.mean(jnp.subtract(*elbo_terms(p, x, k, mc_weight)[:2])))(params)

        g = jax.vmap(grad)(keys)
        return sum(jnp.sum(jnp.var(leaf, axis=0)) for leaf in jax.tree_util.tree_leaves(g))

    grad_var = {"analytic": grad_variance(0.0), "mc": grad_variance(1.0)}
    return rec, spread, grad_var, kl, estimate


def evaluate(params, x, key, num_samples: int):
    """Test-set ELBO, analytic KL vs ``vikl.estimate_kl``, noise of both ELBO estimators.

    ``std_of_one_sample_batch_elbo``: standard deviation, over ``num_samples``
    draws of z, of the test-set mean of the one-sample ELBO with either KL term;
    ``gradient_total_variance``: the summed per-weight variance of its gradient.
    """
    k_elbo, k_est = jax.random.split(key)
    rec, spread, grad_var, kl, estimate = _evaluate(params, x, k_elbo, k_est, num_samples)
    per_image_z = (estimate.value - kl) / estimate.stderr
    return {
        "neg_elbo_nats": float(-jnp.mean(jnp.mean(rec, 0) - kl)),
        "reconstruction_nats": float(jnp.mean(rec)),
        "analytic_kl_nats": float(jnp.mean(kl)),
        "estimate_kl_nats": float(jnp.mean(estimate.value)),
        "estimate_kl_stderr_nats": float(jnp.sqrt(jnp.sum(estimate.stderr**2)) / kl.shape[0]),
        "estimate_kl_max_abs_z": float(jnp.max(jnp.abs(per_image_z))),
        "std_of_one_sample_batch_elbo": {k: float(v) for k, v in spread.items()},
        "gradient_total_variance": {k: float(v) for k, v in grad_var.items()},
    }


def run(ctx: _common.Context) -> dict:
    x_train, y_train, x_test, y_test = load_data(ctx.seed)
    num_steps = ctx.pick(4000, 150)
    key_init, key_train, key_eval = ctx.key(), ctx.key(), ctx.key()
    params0 = init_params(key_init)
    runs, params = {}, {}
    for kind in ("analytic", "mc"):
        ctx.log(f"training with the {kind} KL term, {num_steps} steps")
        params[kind], runs[kind] = train(params0, x_train, key_train, kind, num_steps, ctx.progress,
                                         f"{NAME} ({kind} KL)")
    xt = jnp.asarray(x_test)
    test = {kind: evaluate(params[kind], xt, key_eval, ctx.pick(64, 16)) for kind in runs}
    for kind, t in test.items():
        ctx.log(f"{kind}: test -ELBO {t['neg_elbo_nats']:.2f} nats, KL {t['analytic_kl_nats']:.3f} "
                f"(estimate_kl {t['estimate_kl_nats']:.3f} ± {t['estimate_kl_stderr_nats']:.3f})")

    # Figure 1: training curves.
    smooth = max(1, num_steps // 60)
    fig, (a1, a2) = vp.subplots(1, 2, width=7.6, height=3.0)
    for kind, color, label in (("analytic", vp.COLORS["forward"], "analytic KL"),
                               ("mc", vp.COLORS["reverse"], "Monte-Carlo KL")):
        vp.loss_curve(a1, runs[kind]["neg_elbo"], label=label, color=color, smooth=smooth,
                      ylabel="−ELBO (nats/image)")
        vp.loss_curve(a2, runs[kind]["kl_term"], label=f"{label}: term in the loss", color=color,
                      smooth=smooth, ylabel="KL(q(z|x) ‖ p(z)) (nats/image)")
    a1.set_ylim(top=float(np.percentile(runs["analytic"]["neg_elbo"], 99)))
    vp.label_axes(a1, title="training loss (minibatch)")
    vp.label_axes(a2, title="KL term over training")
    ctx.savefig(fig, f"{NAME}_training")

    # Figure 2: reconstructions of held-out digits (mean of p(x|z) at z = mean of q).
    n_show = 10
    recon = jax.nn.sigmoid(decode_logits(params["analytic"], encode(params["analytic"], xt[:n_show]).loc))
    fig, axes = vp.subplots(2, n_show, width=7.6, height=1.9, layout=None)
    for i in range(n_show):
        for row, img in enumerate((x_test[i], np.asarray(recon[i]))):
            ax = axes[row, i]
            ax.imshow(img.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            ax.grid(False)
            for s in ax.spines.values():
                s.set_visible(False)
        axes[0, i].set_title(str(y_test[i]), fontsize=8)
    axes[0, 0].set_ylabel("test", fontsize=8)
    axes[1, 0].set_ylabel("recon.", fontsize=8)
    fig.subplots_adjust(wspace=0.08, hspace=0.08)
    ctx.savefig(fig, f"{NAME}_reconstructions")

    # Figure 3: latent map (posterior means of test digits) and decoded grid.
    loc = np.asarray(encode(params["analytic"], xt).loc)
    fig, (a1, a2) = vp.subplots(1, 2, width=8.4, height=4.0)
    cmap = mpl.colormaps["tab10"]
    for d in range(10):
        m = y_test == d
        a1.scatter(loc[m, 0], loc[m, 1], s=9, color=cmap(d), label=str(d))
    a1.set_aspect("equal", adjustable="datalim")
    vp.label_axes(a1, "z₁ (posterior mean)", "z₂", title="held-out digits in latent space", legend=False)
    a1.legend(ncol=2, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=1.5)
    grid_n = 8
    zs = np.linspace(-2.4, 2.4, grid_n, dtype=np.float32)
    zz = jnp.asarray(np.stack(np.meshgrid(zs, zs[::-1]), -1).reshape(-1, 2))
    imgs = np.asarray(jax.nn.sigmoid(decode_logits(params["analytic"], zz))).reshape(grid_n, grid_n, 8, 8)
    imgs = np.pad(imgs, ((0, 0), (0, 0), (1, 1), (1, 1)))  # a white frame around each digit
    canvas = imgs.transpose(0, 2, 1, 3).reshape(grid_n * 10, grid_n * 10)
    a2.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, extent=(-2.7, 2.7, -2.7, 2.7))
    a2.grid(False)
    vp.label_axes(a2, "z₁", "z₂", title="decoder means on a grid of z")
    ctx.savefig(fig, f"{NAME}_latent")

    every = max(1, num_steps // 200)
    return {
        "units": "nats per image",
        "data": {"train": int(x_train.shape[0]), "test": int(x_test.shape[0]), "pixels": PIXELS,
                 "binarized_at": "intensity >= 8 of 16"},
        "model": {"latent": LATENT, "hidden": HIDDEN, "batch": BATCH, "learning_rate": LEARNING_RATE,
                  "num_steps": num_steps},
        "test": test,
        "training_curves_every": every,
        "training_curves": {kind: {k: v[::every] for k, v in r.items()} for kind, r in runs.items()},
        "final_train_neg_elbo_last100_mean": {k: float(np.mean(r["neg_elbo"][-100:])) for k, r in runs.items()},
    }


def main(argv=None):
    return _common.main(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
