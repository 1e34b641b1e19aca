# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Spectra of the NTK of a coordinate MLP
#
# Tancik et al. (2020) explain why a ReLU MLP on raw coordinates cannot learn high
# frequencies: its neural tangent kernel (NTK) has a spectrum that falls off fast with
# frequency, and kernel regression (the infinitely wide network trained by gradient
# descent) learns eigen-directions at speeds proportional to their eigenvalues. A
# Fourier-feature mapping $\gamma(v) = [a_j \cos 2\pi b_j^\top v, a_j \sin 2\pi
# b_j^\top v]$ makes the NTK stationary, $k(v_1, v_2) = h(v_1 - v_2)$, and its spectrum
# tunable.
#
# This walk-through computes, through the public API only:
#
# 1. the kernel in the spatial domain for the 1D power-law mappings
#    $b_j = j$, $a_j = j^{-p}$;
# 2. their exact eigenvalues on a 1D grid (one FFT: the Gram is circulant);
# 3. in 2D, exact top eigenvalues for Gaussian mappings (Lanczos on an FFT matvec)
#    and the "NTK Fourier spectrum" image;
# 4. a fitted decay exponent.
#
# Set `NTKSPEC_QUICK=1` for small sizes (the test suite does).

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import ntkspec
from ntkspec import mappings, plotting, spectra

QUICK = os.environ.get("NTKSPEC_QUICK") == "1"
OUT = Path(os.environ.get("NTKSPEC_NOTEBOOK_OUT", "notebook_outputs"))
OUT.mkdir(parents=True, exist_ok=True)

N_1D = 64 if QUICK else 256  # points of the 1D grid
N_2D = 16 if QUICK else 64  # side of the 2D grid
TOP_K = 10 if QUICK else 50  # top eigenvalues by Lanczos
arch = ntkspec.ReluMLP(4)  # 4 Dense layers, NTK parameterization
print(arch, "quick" if QUICK else "full")

# %% [markdown]
# ## 1. The kernel in the spatial domain (1D power-law mappings)
#
# On the grid $x_k = k/N$ the kernel against the point 0 is one row of the Gram.
# Small $p$ (flat amplitudes) gives a narrow kernel: it can fit fast variations.

# %%
powers = [0.0, 1.0, np.inf] if QUICK else [0.0, 0.5, 1.0, 1.5, 2.0, np.inf]
grid_1d = ntkspec.Grid((N_1D,))
x = grid_1d.points()
fig, ax = plt.subplots(figsize=(6, 3.5))
for p in powers:
    gamma = mappings.power_law(N_1D // 2, p)
    row = np.asarray(ntkspec.ntk(arch, gamma(x), gamma(x[:1])))[:, 0]
    offsets = np.where(x[:, 0] < 0.5, x[:, 0], x[:, 0] - 1.0)  # wrap to [-1/2, 1/2)
    order = np.argsort(offsets)
    plotting.kernel_profile(offsets[order], row[order] / row[0], ax, label=f"p={p:g}")
ax.set_title("NTK(Δ)/NTK(0), power-law mappings")
ax.legend(fontsize=8)
fig.savefig(OUT / "kernels_1d.png", dpi=90)

# %% [markdown]
# ## 2. Exact eigenvalues on the 1D grid
#
# Integer frequencies make the kernel 1-periodic, so the Gram is circulant and all
# N eigenvalues come from one FFT, each labelled by its frequency $m$. We check the
# structured result against dense `numpy.linalg.eigvalsh` of the same Gram.

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for p in powers:
    gamma = mappings.power_law(N_1D // 2, p)
    spec = spectra.grid_spectrum(arch, gamma, grid_1d)
    freq = np.abs(spec.frequencies[0])
    plotting.radial_spectrum(freq, spec.values, ax, label=f"p={p:g}")
ax.set_title("eigenvalue against frequency |m|")
ax.legend(fontsize=8)
fig.savefig(OUT / "spectra_1d.png", dpi=90)

gamma = mappings.power_law(N_1D // 2, 1.0)
lam_fft = ntkspec.spectrum(arch, gamma, grid_1d)
lam_dense = np.linalg.eigvalsh(np.asarray(ntkspec.ntk(arch, gamma(x))))[::-1]
err = np.max(np.abs(lam_fft - lam_dense)) / lam_dense[0]
print(f"FFT vs dense eigvalsh, p=1: max relative error {err:.1e}")
assert err < 1e-10

# %% [markdown]
# ## 3. Two dimensions: Gaussian mappings
#
# Gaussian frequencies $B \sim \mathcal N(0, \sigma^2)$ are not integers, so the Gram
# on a grid is (block) Toeplitz rather than circulant: the exact top eigenvalues come
# from Lanczos on an FFT matvec. The frequency image beside them is the DFT of the
# kernel on the grid offsets (the paper's "NTK Fourier spectrum"): a picture of which
# frequencies the kernel passes, not eigenvalues.

# %%
grid_2d = ntkspec.Grid((N_2D, N_2D))
sigmas = [1.0, 10.0] if QUICK else [1.0, 10.0, 100.0]
fig, axes = plt.subplots(1, len(sigmas) + 1, figsize=(4.2 * (len(sigmas) + 1), 3.6))
for sigma, ax_img in zip(sigmas, axes[1:], strict=True):
    gamma = mappings.gaussian(0, 2, 64 if QUICK else 256, sigma)
    lam = ntkspec.spectrum(arch, gamma, grid_2d, k=TOP_K)
    plotting.eigenvalue_spectrum(lam, axes[0], label=f"σ={sigma:g}", marker=".")
    fs = spectra.fourier_spectrum(arch, gamma, grid_2d)
    values, _ = fs.centred()
    plotting.frequency_image(values, ax_img, title=f"NTK Fourier spectrum, σ={sigma:g}")
axes[0].legend(fontsize=8)
axes[0].set_title(f"top {TOP_K} eigenvalues, {N_2D}×{N_2D} grid")
fig.tight_layout()
fig.savefig(OUT / "spectra_2d.png", dpi=90)

# %% [markdown]
# ## 4. Radial falloff and its decay exponent
#
# For the basic mapping (periodic) all eigenvalues are exact; grouped in shells of
# $|m|$ they fall off like a power law, whose exponent we fit over a stated range.

# %%
spec = spectra.grid_spectrum(arch, mappings.basic(2), grid_2d)
radial = spectra.radial_profile(spec)
fit_range = (1.0, N_2D / 4)
fit = spectra.decay_exponent(radial.radius, radial.mean, fit_range=fit_range)
print(f"basic mapping: eigenvalues ~ |m|^-{fit.exponent:.2f} over |m| in {fit_range}")
ax = plotting.radial_spectrum(radial.radius, radial.mean, label="shell mean")
ax.set_title("basic mapping, 2D: radial falloff")
ax.figure.savefig(OUT / "radial_2d.png", dpi=90)
plt.close("all")
