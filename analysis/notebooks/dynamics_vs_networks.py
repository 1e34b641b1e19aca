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
# # Training dynamics: infinite-width theory against finite networks
#
# Under gradient descent on $\mathcal L = \frac{1}{2N_y}\sum (f - y)^2$ a wide network
# evolves like its linearisation: on the training set
# $f_{t+1} = f_t - \frac{\eta}{N_y}\Theta (f_t - y)$, so the residual's component on
# the NTK eigenvector $v_i$ decays like $(1 - \eta\lambda_i/N_y)^t$ (Jacot et al. 2018;
# Lee et al. 2019). Large-eigenvalue (low-frequency) modes are learned first: the
# spectral bias Tancik et al. (2020) remove with Fourier features.
#
# Here we train finite networks of growing width with plain full-batch gradient descent
# on the paper's 1D task and compare them with `ntkspec.gd_dynamics` started from **the
# network's own outputs at step 0** (one independent prediction for the whole run, not
# restarted along the way), then check that the empirical NTK converges to the analytic
# one as the width grows.
#
# Set `NTKSPEC_QUICK=1` for small sizes (the test suite does).

# %%
import os
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import numpy as np

import ntkspec
from ntkspec import data, mappings, networks, plotting

QUICK = os.environ.get("NTKSPEC_QUICK") == "1"
OUT = Path(os.environ.get("NTKSPEC_NOTEBOOK_OUT", "notebook_outputs"))
OUT.mkdir(parents=True, exist_ok=True)

WIDTHS = [64, 512] if QUICK else [64, 256, 1024, 2048]
STEPS = 100 if QUICK else 1000
arch = ntkspec.ReluMLP(3)
gamma = mappings.power_law(32, 1.0)
x_train, y_train, x_test, y_test = data.signal_1d_task(0)
y_train, y_test = y_train[:, None], y_test[:, None]
print(f"{len(x_train)} training points, {len(x_test)} test points; widths {WIDTHS}")

# %% [markdown]
# ## 1. A step size from the spectrum
#
# Gradient descent is stable for $\eta\lambda_{\max}/N_y < 2$; we take
# $\eta = N_y/(2\lambda_{\max})$ (a margin for the finite networks' own kernels), so the
# top mode halves every step and mode $i$ takes about $2\lambda_{\max}/\lambda_i$ steps.

# %%
lam_max = float(ntkspec.spectrum(arch, gamma, x_train, k=1)[0])
lr = 0.5 * y_train.size / lam_max
print(f"largest NTK eigenvalue {lam_max:.3g}; learning rate {lr:.3g}")

# %% [markdown]
# ## 2. Loss curves: networks against theory
#
# The gap between the network's test outputs and the theory's (from the same initial
# outputs) should shrink as the width grows, roughly like $1/\sqrt{\text{width}}$.


# %%
def loss(f, y):
    return 0.5 * np.mean((np.asarray(f) - y) ** 2, axis=(-2, -1))


gaps, runs = {}, {}
for width in WIDTHS:
    net = networks.mlp(arch, gamma, width, dtype=np.float64)
    params = net.init(jax.random.PRNGKey(0))
    result = networks.train(
        net,
        params,
        x_train,
        y_train,
        steps=STEPS,
        learning_rate=lr,
        optimizer="gd",
        eval_sets={"test": (x_test, y_test)},
        eval_every=max(1, STEPS // 20),
        record_outputs=True,
        progress=False,
    )
    hist = result.history
    f_train, f_test = ntkspec.gd_dynamics(
        arch,
        gamma,
        x_train,
        y_train,
        x_test,
        hist.steps.astype(np.float64),
        lr,
        discrete=True,
        f_train_0=hist.outputs["train"][0],
        f_test_0=hist.outputs["test"][0],
    )
    runs[width] = (hist, f_train, f_test)
    # function-space gap on the test points, relative to the target's scale
    diff = hist.outputs["test"] - f_test
    gaps[width] = float(np.max(np.sqrt(np.mean(diff**2, axis=(1, 2)))) / np.std(y_test))
    print(f"width {width:>5}: max_t RMS(f_net - f_theory) / std(y) = {gaps[width]:.2e}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for width, (hist, _, _) in runs.items():
    plotting.curves(
        hist.steps,
        {f"net w={width}": hist.losses["test"]},
        axes[0],
        xlabel="GD step",
        ylabel="test loss",
    )
steps = runs[WIDTHS[-1]][0].steps
plotting.curves(
    steps, {"theory": loss(runs[WIDTHS[-1]][2], y_test)}, axes[0], linestyle="--"
)
axes[1].loglog(list(gaps), list(gaps.values()), "o-")
axes[1].set_xlabel("width")
axes[1].set_ylabel("max RMS gap / std(y), test points")
fig.tight_layout()
fig.savefig(OUT / "dynamics_loss.png", dpi=90)
assert gaps[WIDTHS[-1]] < gaps[WIDTHS[0]]

# %% [markdown]
# ## 3. Per-mode residuals: spectral bias
#
# Projecting the training residual on the NTK Gram's eigenvectors shows each mode's own
# geometric decay $(1 - \eta\lambda_i/N_y)^t$ (dashed); the widest network (solid)
# follows it mode by mode, and small-eigenvalue modes are learned last.

# %%
hist, _, _ = runs[WIDTHS[-1]]
modes = ntkspec.eigenmode_residuals(
    arch,
    gamma,
    x_train,
    y_train,
    hist.steps.astype(np.float64),
    lr,
    discrete=True,
    f_train_0=hist.outputs["train"][0],
)
residual_net = hist.outputs["train"] - y_train
net_modes = np.einsum("ni,tnc->tic", modes.eigenvectors, residual_net)
n = len(modes.eigenvalues)  # eigenvalues ascending: mode n - 1 is the top one
fig, ax = plt.subplots(figsize=(6, 3.8))
for rank, colour in zip([1, 4, 12, n // 2], ["C0", "C1", "C2", "C3"], strict=True):
    i = n - rank
    theory = np.abs(modes.residual[:, i, 0]) / np.abs(modes.residual[0, i, 0])
    net_i = np.abs(net_modes[:, i, 0]) / np.abs(net_modes[0, i, 0])
    ax.semilogy(hist.steps, theory, "--", color=colour)
    ax.semilogy(hist.steps, net_i, "-", color=colour, label=f"eigenvalue rank {rank}")
ax.set_ylim(1e-4, 2)
ax.set_xlabel("GD step")
ax.set_ylabel("|projection| / initial")
ax.set_title(f"residual per NTK eigenmode, width {WIDTHS[-1]} (dashed: theory)")
ax.legend(fontsize=8)
fig.savefig(OUT / "dynamics_modes.png", dpi=90)

# %% [markdown]
# ## 4. The empirical NTK converges to the analytic NTK
#
# Relative Frobenius error of $\hat\Theta = JJ^\top$ at initialisation against
# `ntkspec.ntk`; theory predicts a slope of $-1/2$ in width.

# %%
theta = np.asarray(ntkspec.ntk(arch, gamma(x_train)))
errors = []
for width in WIDTHS:
    net = networks.mlp(arch, gamma, width, dtype=np.float64)
    errs = []
    for seed in range(2 if QUICK else 4):
        params = net.init(jax.random.PRNGKey(seed))
        emp = np.asarray(networks.empirical_ntk(net, params, x_train))
        errs.append(np.linalg.norm(emp - theta) / np.linalg.norm(theta))
    errors.append(float(np.mean(errs)))
slope = np.polyfit(np.log(WIDTHS), np.log(errors), 1)[0]
print(
    "relative error against width:",
    ", ".join(f"{w}: {e:.4f}" for w, e in zip(WIDTHS, errors, strict=True)),
)
print(f"log-log slope {slope:.2f} (theory -0.5)")
fig, ax = plt.subplots(figsize=(5, 3.4))
ax.loglog(WIDTHS, errors, "o-", label="measured")
ax.loglog(
    WIDTHS,
    errors[0] * (np.asarray(WIDTHS) / WIDTHS[0]) ** -0.5,
    "--",
    label="width^-1/2",
)
ax.set_xlabel("width")
ax.set_ylabel("‖Θ̂ − Θ‖_F / ‖Θ‖_F")
ax.legend()
fig.savefig(OUT / "ntk_convergence.png", dpi=90)
plt.close("all")
