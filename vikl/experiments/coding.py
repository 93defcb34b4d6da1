"""Entropy as optimal code length, cross-entropy as a mismatched code, KL as the extra bits.

Symbols A, B, C, D with probabilities p = (1/2, 1/4, 1/8, 1/8): the entropy
``H(p) = -sum p log2 p`` is 1.75 bits per symbol, and a Huffman code built for p
(codeword lengths 1, 2, 3, 3) reaches it. A code built for another distribution
q has lengths ``-log2 q`` and costs ``H(p, q) = -sum p log2 q`` bits per symbol
under p, the cross-entropy; the extra ``H(p, q) - H(p) = KL(p‖q)`` bits are the
price of the wrong model. Two wrong codes: uniform (2 bits per symbol, 0.25
bits extra) and one built for the reversed probabilities (2.625 bits, 0.875
extra).

Weather example: one report per day, sunny or rainy.
* a city where both are equally likely, p = (1/2, 1/2): 1 bit per day;
* a desert where it is sunny on 99 days in 100, p = (0.99, 0.01):
  ``H = -0.99 log2 0.99 - 0.01 log2 0.01 = 0.0808`` bits per day.
A one-bit-per-day code (built for the city) wastes ``KL(desert‖city) = 0.919``
bits per day in the desert; Huffman codes over blocks of k days approach
0.0808 bits per day as k grows (within 1/k of the entropy).

Entropies, cross-entropies and KL come from ``vikl`` (``base=2``); code lengths
from a Huffman code built here from the probabilities.
"""

from __future__ import annotations

import heapq
import itertools
import math

import jax.numpy as jnp
import numpy as np

import vikl
from vikl import plotting as vp
from vikl.experiments import _common

NAME = "coding"

SYMBOLS = ("A", "B", "C", "D")
P_SYMBOLS = (0.5, 0.25, 0.125, 0.125)
WRONG_CODES = {
    "uniform": (0.25, 0.25, 0.25, 0.25),
    "reversed": (0.125, 0.125, 0.25, 0.5),
}
WEATHER = {"city": (0.5, 0.5), "desert": (0.99, 0.01)}  # (P(sunny), P(rainy))


def huffman_code(probs) -> list[str]:
    """Binary Huffman codewords for ``probs`` (ties broken by index: deterministic)."""
    counter = itertools.count()
    heap = [(float(p), next(counter), (i,)) for i, p in enumerate(probs)]
    heapq.heapify(heap)
    codes = [""] * len(probs)
    if len(heap) == 1:
        return ["0"]
    while len(heap) > 1:
        p0, _, s0 = heapq.heappop(heap)
        p1, _, s1 = heapq.heappop(heap)
        for i in s0:
            codes[i] = "0" + codes[i]
        for i in s1:
            codes[i] = "1" + codes[i]
        heapq.heappush(heap, (p0 + p1, next(counter), s0 + s1))
    return codes


def expected_length(probs, codes) -> float:
    """Mean codeword length in bits per symbol under ``probs``."""
    return float(sum(p * len(c) for p, c in zip(probs, codes)))


def _probs(values):
    return jnp.asarray(values, dtype=jnp.float32)


def _block_coding(p_sunny: float, max_block: int):
    """Huffman code over blocks of k days: bits per day for k = 1..max_block."""
    per_day = []
    for k in range(1, max_block + 1):
        probs = [p_sunny ** (k - r) * (1 - p_sunny) ** r
                 for r in range(k + 1) for _ in range(math.comb(k, r))]
        per_day.append(expected_length(probs, huffman_code(probs)) / k)
    return per_day


def run(ctx: _common.Context) -> dict:
    p = _probs(P_SYMBOLS)
    code_p = huffman_code(P_SYMBOLS)
    symbols = {
        "symbols": SYMBOLS,
        "p": P_SYMBOLS,
        "entropy_bits": float(vikl.entropy(p, base=2)),
        "entropy_bits_hand": -sum(x * math.log2(x) for x in P_SYMBOLS),
        "huffman_code": dict(zip(SYMBOLS, code_p)),
        "huffman_expected_length_bits": expected_length(P_SYMBOLS, code_p),
        "wrong_codes": {},
    }
    for name, q_values in WRONG_CODES.items():
        q = _probs(q_values)
        code_q = huffman_code(q_values)
        symbols["wrong_codes"][name] = {
            "q": q_values,
            "huffman_code": dict(zip(SYMBOLS, code_q)),
            "expected_length_under_p_bits": expected_length(P_SYMBOLS, code_q),
            "cross_entropy_bits": float(vikl.cross_entropy(p, q, base=2)),
            "kl_bits": float(_common.bits(vikl.kl_divergence(p, q))),
            "extra_bits_of_code": expected_length(P_SYMBOLS, code_q) - expected_length(P_SYMBOLS, code_p),
        }
    ctx.log(f"H(p) = {symbols['entropy_bits']:.4f} bits; Huffman: {symbols['huffman_expected_length_bits']} bits")

    max_block = ctx.pick(10, 6)
    weather = {
        "definition": "one report per day, sunny or rainy; probabilities are (P(sunny), P(rainy))",
        "distributions": {k: {"p_sunny": v[0], "p_rainy": v[1]} for k, v in WEATHER.items()},
        "entropy_bits_per_day": {k: float(vikl.entropy(_probs(v), base=2)) for k, v in WEATHER.items()},
        "entropy_bits_per_day_hand": {k: -sum(x * math.log2(x) for x in v) for k, v in WEATHER.items()},
        "one_bit_code_in_desert": {
            "cross_entropy_bits": float(vikl.cross_entropy(_probs(WEATHER["desert"]), _probs(WEATHER["city"]), base=2)),
            "kl_desert_city_bits": float(_common.bits(vikl.kl_divergence(_probs(WEATHER["desert"]), _probs(WEATHER["city"])))),
        },
        "desert_block_huffman": {
            "block_days": list(range(1, max_block + 1)),
            "bits_per_day": _block_coding(WEATHER["desert"][0], max_block),
        },
    }
    ctx.log(f"weather: city {weather['entropy_bits_per_day']['city']:.4f}, "
            f"desert {weather['entropy_bits_per_day']['desert']:.4f} bits/day")

    # Figure 1: code lengths vs -log2 p, and the bits per symbol of each code.
    fig, (a1, a2) = vp.subplots(1, 2, width=7.6, height=3.0)
    idx = np.arange(len(SYMBOLS))
    a1.bar(idx - 0.2, [-math.log2(x) for x in P_SYMBOLS], width=0.4, color=vp.COLORS["analytic"],
           label="−log₂ p(x) (ideal)")
    a1.bar(idx + 0.2, [len(c) for c in code_p], width=0.4, color=vp.COLORS["forward"],
           label="Huffman codeword length")
    for i, c in enumerate(code_p):
        a1.text(i + 0.2, len(c) + 0.05, c, ha="center", va="bottom", fontsize=8)
    a1.set_xticks(idx, [f"{s}\np={x:g}" for s, x in zip(SYMBOLS, P_SYMBOLS)])
    a1.set_ylim(0, 4.8)
    vp.label_axes(a1, "symbol", "length (bits)", title="optimal code for p")
    labels = ["code for p", "uniform\ncode", "code for\nreversed p"]
    h = symbols["entropy_bits"]
    ce = [symbols["wrong_codes"][k]["cross_entropy_bits"] for k in WRONG_CODES]
    a2.bar([0, 1, 2], [h, h, h], color=vp.COLORS["forward"], label="entropy H(p)")
    a2.bar([1, 2], [c - h for c in ce], bottom=[h, h], color=vp.COLORS["reverse"], label="KL(p‖q): extra bits")
    for i, v in enumerate([h, *ce]):
        a2.text(i, v + 0.05, f"{v:.4g}", ha="center", va="bottom", fontsize=8)
    a2.set_xticks([0, 1, 2], labels)
    a2.set_ylim(0, 3.3)
    vp.label_axes(a2, None, "expected length (bits/symbol)", title="cross-entropy = H(p) + KL(p‖q)")
    a2.legend(loc="upper left")
    ctx.savefig(fig, NAME)

    # Figure 2: weather, block coding of the desert.
    fig, ax = vp.subplots(1, 1, width=4.2, height=3.0)
    blocks = weather["desert_block_huffman"]
    ax.plot(blocks["block_days"], blocks["bits_per_day"], "o-", color=vp.COLORS["forward"],
            label="Huffman code on blocks of k days")
    ax.axhline(weather["entropy_bits_per_day"]["desert"], color=vp.COLORS["analytic"], linestyle="--",
               label=f"entropy {weather['entropy_bits_per_day']['desert']:.4f} bits/day")
    ax.axhline(1.0, color=vp.COLORS["reverse"], linestyle=":", label="1 bit/day (the city's code)")
    ax.set_ylim(0, 1.1)
    vp.label_axes(ax, "block length k (days)", "bits per day", title="desert weather, P(sunny) = 0.99")
    ctx.savefig(fig, f"{NAME}_weather")

    return {"units": "bits", "symbols": symbols, "weather": weather}


def main(argv=None):
    return _common.main(NAME, __doc__, run, argv)


if __name__ == "__main__":
    main()
