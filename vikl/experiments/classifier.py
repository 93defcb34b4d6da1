"""Cross-entropy loss = entropy of the labels + KL(labels||prediction).

For a label distribution p and a predicted distribution q over classes,
``H(p, q) = -sum p log q = H(p) + KL(p‖q)``: minimizing the cross-entropy
loss minimizes KL(p‖q), because H(p) does not depend on the model.

Worked example (classes cat, dog, lizard; bits): the picture shows a cat, the
label is one-hot p = (1, 0, 0) and the model predicts q = (0.8, 0.1, 0.1).
Then H(p) = 0 and the loss is all KL: ``-log2 0.8 = 0.322`` bits. With a
smoothed label p = (0.9, 0.05, 0.05) the loss is 0.622 bits, of which H(p) =
0.569 bits can never be trained away.

torch check: ``torch.nn.functional.kl_div(log q, p, reduction="batchmean")``
computes ``KL(p‖q)`` (note the order: input log q first, target p second) and
agrees with ``vikl.kl_divergence(p, q)`` for p = (0.1, 0.9), q = (0.2, 0.8)
(0.0367 nats), when the inputs have shape (batch, classes). On 1-D inputs
"batchmean" divides by the number of classes instead: half the KL here.

Training: a softmax regression on three 2-D Gaussian blobs (cat, dog,
lizard) with smoothed labels, trained with optax; at every step the mean
cross-entropy equals the constant label entropy plus the mean KL.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

import vikl
from vikl import plotting as vp
from vikl.experiments import _common

NAME = "classifier"

CLASSES = ("cat", "dog", "lizard")
ONE_HOT = (1.0, 0.0, 0.0)
SMOOTHED = (0.9, 0.05, 0.05)
PREDICTION = (0.8, 0.1, 0.1)
TORCH_P, TORCH_Q = (0.1, 0.9), (0.2, 0.8)
# optax.smooth_labels: (1 - a) one_hot + a / K; a = 0.15 gives (0.9, 0.05, 0.05), the SMOOTHED label.
SMOOTHING = 0.15


def decompose(p, q) -> dict:
    """Cross-entropy, entropy and KL (bits) of label ``p`` vs prediction ``q``."""
    p = jnp.asarray(p, jnp.float32)
    q = jnp.asarray(q, jnp.float32)
    return {
        "label": p,
        "prediction": q,
        "cross_entropy_bits": float(vikl.cross_entropy(p, q, base=2)),
        "entropy_bits": float(vikl.entropy(p, base=2)) + 0.0,  # + 0.0: no "-0.0" in the JSON
        "kl_bits": float(_common.bits(vikl.kl_divergence(p, q))),
    }


def torch_check() -> dict:
    """vikl's KL(p‖q) next to torch's F.kl_div for the two-class example (nats)."""
    out = {"p": TORCH_P, "q": TORCH_Q,
           "vikl_kl_nats": float(vikl.kl_divergence(jnp.asarray(TORCH_P, jnp.float32),
                                                    jnp.asarray(TORCH_Q, jnp.float32))),
           "hand_kl_nats": sum(a * math.log(a / b) for a, b in zip(TORCH_P, TORCH_Q))}
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:  # torch is optional
        out.update(torch_kl_div_batchmean=None, torch_kl_div_1d_batchmean=None, torch_available=False)
        return out
    p = torch.tensor([TORCH_P], dtype=torch.float64)
    q = torch.tensor([TORCH_Q], dtype=torch.float64)
    out["torch_kl_div_batchmean"] = float(F.kl_div(q.log(), p, reduction="batchmean"))
    out["torch_kl_div_1d_batchmean"] = float(F.kl_div(q[0].log(), p[0], reduction="batchmean"))
    out["torch_available"] = True
    return out


def _blobs(key, n_per_class: int):
    centers = jnp.asarray([[-1.5, 0.0], [1.5, 0.0], [0.0, 2.0]], jnp.float32)
    x = centers[:, None, :] + 1.1 * jax.random.normal(key, (3, n_per_class, 2), jnp.float32)
    y = jnp.repeat(jnp.arange(3), n_per_class)
    return x.reshape(-1, 2), y


def train(key, num_steps: int, n_per_class: int):
    """Softmax regression with smoothed labels; returns per-step CE, H and KL in bits."""
    x, y = _blobs(key, n_per_class)
    labels = optax.smooth_labels(jax.nn.one_hot(y, 3, dtype=jnp.float32), SMOOTHING)
    params = {"w": jnp.zeros((2, 3), jnp.float32), "b": jnp.zeros((3,), jnp.float32)}
    opt = optax.adam(0.05)

    def loss_fn(params):
        logits = x @ params["w"] + params["b"]
        return optax.softmax_cross_entropy(logits, labels).mean(), logits

    @jax.jit
    def steps(params):
        def step(carry, _):
            params, state = carry
            (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            probs = jax.nn.softmax(logits)
            rec = (vikl.cross_entropy(labels, probs).mean(),
                   vikl.entropy(labels).mean(),
                   vikl.kl_divergence(labels, probs).mean(),
                   loss)
            with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 step counts with floats
                updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), rec

        (params, _), rec = jax.lax.scan(step, (params, opt.init(params)), None, length=num_steps)
        return params, rec

    params, (ce, h, kl, loss) = steps(params)
    acc = float(jnp.mean(jnp.argmax(x @ params["w"] + params["b"], -1) == y))
    return {k: np.asarray(_common.bits(v), np.float64) for k, v in
            (("cross_entropy_bits", ce), ("entropy_bits", h), ("kl_bits", kl), ("optax_loss_bits", loss))}, acc


def run(ctx: _common.Context) -> dict:
    examples = {"one_hot": decompose(ONE_HOT, PREDICTION), "smoothed": decompose(SMOOTHED, PREDICTION)}
    examples["one_hot"]["minus_log2_0.8"] = -math.log2(0.8)
    for k, v in examples.items():
        ctx.log(f"{k}: CE {v['cross_entropy_bits']:.4f} = H {v['entropy_bits']:.4f} + KL {v['kl_bits']:.4f} bits")
    torch_numbers = torch_check()
    ctx.log(f"torch F.kl_div: {torch_numbers['torch_kl_div_batchmean']}, vikl: {torch_numbers['vikl_kl_nats']:.6f} nats")

    num_steps = ctx.pick(400, 100)
    curves, acc = train(ctx.key(), num_steps, ctx.pick(100, 40))

    fig, (a1, a2) = vp.subplots(1, 2, width=7.6, height=3.0)
    names = ["one-hot label\n(1, 0, 0)", "smoothed label\n(0.9, 0.05, 0.05)"]
    hs = [examples[k]["entropy_bits"] for k in examples]
    kls = [examples[k]["kl_bits"] for k in examples]
    a1.bar([0, 1], hs, width=0.55, color=vp.COLORS["analytic"], label="H(p): label entropy")
    a1.bar([0, 1], kls, bottom=hs, width=0.55, color=vp.COLORS["reverse"], label="KL(p‖q)")
    for i, k in enumerate(examples):
        v = examples[k]["cross_entropy_bits"]
        a1.text(i, v + 0.02, f"H(p, q) = {v:.3f}", ha="center", va="bottom", fontsize=8)
    a1.set_xticks([0, 1], names)
    a1.set_ylim(0, 0.85)
    vp.label_axes(a1, None, "loss (bits)", title="prediction q = (0.8, 0.1, 0.1) on a cat")
    a1.legend(loc="upper left", fontsize=8)
    steps = np.arange(1, num_steps + 1)
    a2.plot(steps, curves["cross_entropy_bits"], color=vp.COLORS["forward"], label="cross-entropy loss")
    a2.plot(steps, curves["entropy_bits"], color=vp.COLORS["analytic"], linestyle="--", label="H(labels)")
    a2.plot(steps, curves["kl_bits"], color=vp.COLORS["reverse"], label="KL(labels ‖ prediction)")
    vp.label_axes(a2, "training step", "mean over examples (bits)", title="softmax regression, smoothed labels")
    ctx.savefig(fig, NAME)

    return {
        "units": "bits unless named _nats",
        "classes": CLASSES,
        "worked_examples": examples,
        "torch_kl_div": torch_numbers,
        "training": {
            "num_steps": num_steps,
            "label_smoothing": SMOOTHING,
            "final_accuracy": acc,
            **{k: v for k, v in curves.items()},
            "max_abs_ce_minus_h_minus_kl_bits": float(np.max(np.abs(
                curves["cross_entropy_bits"] - curves["entropy_bits"] - curves["kl_bits"]))),
        },
    }


def main(argv=None):
    return _common.main(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
