"""Tests of vikl.plotting: densities, HPD contour levels, loss curves, style and saving."""

import math

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

import vikl  # noqa: E402
from vikl import plotting as vp  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_style_applies_inside_block_only():
    before = dict(plt.rcParams)
    with vp.style():
        assert plt.rcParams["text.color"] == vp.TEXT_COLOR
        assert plt.rcParams["savefig.transparent"] is True
        assert plt.rcParams["axes.spines.top"] is False
    with vp.style(transparent=False):
        assert plt.rcParams["savefig.facecolor"] == "white"
    assert plt.rcParams["text.color"] == before["text.color"]
    assert plt.rcParams["savefig.transparent"] == before["savefig.transparent"]


def test_density_1d_matches_scipy_and_integrates_to_one():
    fig, ax = vp.subplots()
    x, dens = vp.density_1d(ax, vikl.Normal(1.0, 0.5), (-3.0, 5.0), num=2001, label="q")
    np.testing.assert_allclose(dens, stats.norm(1.0, 0.5).pdf(x), rtol=1e-5, atol=1e-7)
    assert abs(np.trapezoid(dens, x) - 1.0) < 1e-5
    assert ax.get_lines()[0].get_label() == "q"
    vp.density_1d(ax, vikl.Normal(0.0, 0.1), (-3.0, 5.0))  # a taller curve drawn later
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= 1 / (0.1 * math.sqrt(2 * math.pi))


def test_density_1d_callable_and_normalize():
    fig, ax = vp.subplots()
    # Unnormalized N(0, 2^2) log density.
    x, dens = vp.density_1d(ax, lambda x: -0.125 * x**2, (-12.0, 12.0), num=4001, normalize=True, fill=True)
    np.testing.assert_allclose(dens, stats.norm(0.0, 2.0).pdf(x), rtol=1e-4, atol=1e-8)
    assert len(ax.collections) == 1  # the fill


def test_density_1d_float64_distribution_under_x64():
    with jax.enable_x64(True):
        fig, ax = vp.subplots()
        d = vikl.Normal(jnp.float64(0.0), jnp.float64(1.0))
        x, dens = vp.density_1d(ax, d, (-1.0, 1.0), num=11)
        assert x.dtype == np.float64
        np.testing.assert_allclose(dens, stats.norm.pdf(x), rtol=1e-12)


def test_hpd_levels_of_a_standard_bivariate_normal():
    # For N(0, I_2) the HPD region of mass m is the disc of radius r with
    # 1 - exp(-r^2 / 2) = m, where the density is (1 - m) / (2 pi).
    xs = np.linspace(-7, 7, 1401)
    xx, yy = np.meshgrid(xs, xs)
    dens = np.exp(-0.5 * (xx**2 + yy**2)) / (2 * np.pi)
    masses = (0.5, 0.9, 0.99)
    levels = vp.hpd_levels(dens, masses)
    expected = sorted((1 - m) / (2 * np.pi) for m in masses)
    np.testing.assert_allclose(levels, expected, rtol=2e-2)


def test_contour_2d_draws_one_level_per_mass():
    fig, ax = vp.subplots()
    p = vikl.MultivariateNormal(jnp.zeros(2), covariance_matrix=jnp.array([[1.0, 0.8], [0.8, 1.0]]))
    cs = vp.contour_2d(ax, p, (-3, 3), (-3, 3), masses=(0.5, 0.9, 0.99), label="p", num=80)
    assert len(cs.levels) == 3
    assert ax.get_legend_handles_labels()[1] == ["p"]
    cs = vp.contour_2d(ax, p.log_prob, (-3, 3), (-3, 3), masses=(0.9,), filled=True, num=60)
    assert len(cs.levels) == 2  # one band between the 90% level and the peak


def test_loss_curve_smoothing_and_labels():
    fig, ax = vp.subplots()
    losses = np.linspace(5.0, 1.0, 100) + 0.1 * np.sin(np.arange(100))
    vp.loss_curve(ax, losses, smooth=10, label="reverse KL")
    lines = ax.get_lines()
    assert len(lines) == 2  # raw (faint) and moving average
    np.testing.assert_allclose(lines[1].get_ydata(), np.convolve(losses, np.ones(10) / 10, "valid"))
    assert ax.get_xlabel() == "optimization step"
    assert "nats" in ax.get_ylabel()


def test_label_axes_adds_legend_only_with_labels():
    fig, ax = vp.subplots()
    ax.plot([0, 1], [0, 1])
    vp.label_axes(ax, "x (m)", "y (1/m)", title="t")
    assert ax.get_legend() is None
    ax.plot([0, 1], [1, 0], label="line")
    vp.label_axes(ax)
    assert ax.get_legend() is not None
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("x (m)", "y (1/m)", "t")


def test_log_density_fn_rejects_non_callables():
    with pytest.raises(TypeError, match="log_prob"):
        vp.log_density_fn(3.0)


def _figure():
    with vp.style():
        fig, ax = vp.subplots()
        vp.density_1d(ax, vikl.Normal(0.0, 1.0), (-3, 3), label="N(0, 1)")
        vp.label_axes(ax, "x", "density")
    return fig


def test_save_writes_each_format_transparent_and_reproducible(tmp_path):
    paths = vp.save(_figure(), tmp_path / "sub" / "fig", formats=("png", "pdf", "svg"))
    assert [p.rsplit(".", 1)[1] for p in paths] == ["png", "pdf", "svg"]
    img = plt.imread(paths[0])
    assert img.shape[-1] == 4 and img[..., 3].min() == 0.0  # transparent background
    again = vp.save(_figure(), tmp_path / "again", formats=("png", "pdf"))
    for a, b in zip(paths[:2], again):
        with open(a, "rb") as fa, open(b, "rb") as fb:
            assert fa.read() == fb.read(), f"{a} is not byte-reproducible"
    assert plt.get_fignums() == []  # closed after saving


def test_style_text_colour_contrast_on_white_and_dark():
    # Mid-grey text must stay legible on white paper and on GitHub's dark theme (#0d1117).
    def luminance(hex_colour):
        rgb = np.array(matplotlib.colors.to_rgb(hex_colour))
        lin = np.where(rgb <= 0.03928, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
        return float(lin @ [0.2126, 0.7152, 0.0722])

    def contrast(a, b):
        la, lb = sorted((luminance(a), luminance(b)), reverse=True)
        return (la + 0.05) / (lb + 0.05)

    for colour in [vp.TEXT_COLOR, *vp.COLORS.values()]:
        assert contrast(colour, "#ffffff") > 2.2, colour
        assert contrast(colour, "#0d1117") > 3.0, colour
    assert math.isclose(contrast(vp.TEXT_COLOR, "#ffffff"), 3.95, abs_tol=0.1)
