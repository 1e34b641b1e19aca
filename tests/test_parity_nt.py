"""Parity of ntkspec.nngp / ntkspec.ntk with neural-tangents 0.6.5's stax ``kernel_fn``.

NT runs in its own pinned environment (``.venv-nt``, built on first use by
``tests/parity/nt_env.py``; skipped with the reason when it cannot be built, e.g. no
Python 3.11 or no package registry; set ``NTKSPEC_REQUIRE_PARITY=1`` to fail instead).
One NT subprocess computes every reference kernel of the module, concurrently with the
ntkspec computations.

Networks: ``stax.serial(*[Dense(width, W_std, b_std, p), Relu()] * (L - 1),
Dense(1, W_std, b_std, p))``, L = 1..6, W_std in {1, sqrt 2, 1.7}, b_std in {None, 0,
0.1, 1}, p in {"ntk", "standard"} (declared widths 64 and 512). Inputs: raw Gaussian
vectors (d = 7), with duplicate and collinear rows planted in x2; Gaussian Fourier
features of n = 200 points in [0, 1)^2 (256 frequencies, sigma 10: 512 features; large
enough for ntkspec's Chebyshev path); raw 2-D grid coordinates including the origin.
Cross kernels (x2 given) and self kernels (x2 = None). ntkspec is compiled once per
structure, so the coverage is chosen per structure (see ``_raw_cases``): the module
takes ~35 CPU-s of ntkspec plus ~18 CPU-s of NT in parallel.

Acceptance:
* entries whose angle is not zero: ``|a - b| <= 1e-12 |b| + atol`` against NT (eager,
  and jitted where computed), atol = 1e-14 max|K| (5e-14 max|K| on the Chebyshev path;
  see ATOL_FRACTION);
* zero-angle entries (self-kernel diagonal, duplicate pairs, collinear pairs when the
  bias variance is 0): ntkspec against the exact theta = 0 recursion written below to
  1e-12, and against NT to rtol 1e-7 (NT's own error there is ~1e-8: its angle comes
  out as sqrt(2 eps) instead of 0, and the NTK's kappa_0 has slope 1/(2 pi) in theta).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import ntkspec
from ntkspec import mappings

pytestmark = pytest.mark.parity

_HERE = Path(__file__).resolve().parent


def _load_nt_env():
    spec = importlib.util.spec_from_file_location(
        "_ntkspec_parity_nt_env", _HERE / "parity" / "nt_env.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


nt_env = _load_nt_env()

# --- tolerances ----------------------------------------------------------------------
#: Relative tolerance for entries whose angle is not 0 (float64 round-off of a depth-6
#: recursion plus ntkspec's Chebyshev fit, verified to 5e-14 of max|K|).
RTOL = 1e-12
#: Absolute floor, as a fraction of max|K| of the kernel compared, for entries that are
#: close to 0 by cancellation (e.g. the depth-1 kernel sigma_w^2 x.x'/d with no bias,
#: which for Fourier features oscillates through 0): their absolute round-off is a few
#: ulp of the *terms* summed, so their relative error is unbounded. Exact recursion
#: (raw and grid inputs): 1e-14 (measured worst: 1e-16). Chebyshev path (Fourier
#: inputs): 5e-14, the bound to which ntkspec verifies its fit against the recursion on
#: a dense set (measured worst: 9.6e-15 of max|K|; the only entries that need this
#: floor are the depth-1 no-bias ones, all below 3e-3 max|K|).
ATOL_FRACTION = {"raw": 1e-14, "grid": 1e-14, "fourier": 5e-14}
#: ntkspec against the exact theta = 0 recursion.
RTOL_EXACT = 1e-12
#: ntkspec against NT at zero-angle entries: NT's own error there (eager vs jitted NT
#: disagree by 1e-8 on the NTK diagonal; see the module docstring).
RTOL_NT_ZERO_ANGLE = 1e-7

W_STDS = (1.0, math.sqrt(2.0), 1.7)
B_STDS = (None, 0.0, 0.1, 1.0)
DEPTHS = (1, 2, 3, 4, 5, 6)


# --- configurations ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Arch:
    depth: int
    W_std: float
    b_std: float | None
    parameterization: str
    width: (
        int  # declared hidden width (NT); ntkspec's "ntk" parameterization ignores it
    )

    def ntkspec(self) -> ntkspec.ReluMLP:
        width = self.width if self.parameterization == "standard" else None
        return ntkspec.ReluMLP(
            self.depth, self.W_std, self.b_std, self.parameterization, width
        )

    @property
    def bias_var(self) -> float:
        return 0.0 if self.b_std is None else self.b_std**2

    @property
    def tag(self) -> str:
        return (
            f"L{self.depth}-W{self.W_std:.4g}-b{self.b_std}-{self.parameterization}"
            f"{self.width if self.parameterization == 'standard' else ''}"
        )


@dataclasses.dataclass(frozen=True)
class Case:
    arch: Arch
    inputs: str  # key of SETS
    self_kernel: bool  # ntkspec called with x2=None; otherwise x2 = the set's "b" rows
    kernels: tuple[str, ...]
    jit: bool = False  # also compare with jax.jit(kernel_fn) in NT

    @property
    def name(self) -> str:
        return (
            f"{self.arch.tag}|{self.inputs}|{'self' if self.self_kernel else 'cross'}"
        )

    @property
    def nt_name(self) -> str:
        return f"{self.arch.tag}|{self.inputs}"


def _standard_width(depth: int) -> int:
    # Both declared widths are covered, alternating with depth.
    return 64 if depth % 2 else 512


# Cost note: an ntkspec call compiles once per *structure* (depth, parameterization,
# width, b_std None or not, nngp/ntk, self/cross, input shape): ~0.2-0.6 s each, the
# bulk of this module's time. W_std and the value of b_std are pytree data: once a
# structure is compiled, every (W_std, b_std) value costs ~1 ms. So every structure is
# checked with all its value combinations, and the structures are chosen to cover
# depths 1..6, both parameterizations, both declared widths, b_std None and numeric,
# both kernels, self and cross.


def _raw_cases() -> list[Case]:
    """Depths 1..6 x W_std x b_std x both parameterizations, raw inputs (d = 7).

    Self kernels for every structure. Cross kernels differ from self kernels only in
    the first layer, so they are checked at every depth with the parameterization
    alternating (odd depths "ntk", even depths "standard"), plus b_std = None at one
    depth each. The NNGP map does not depend on the parameterization: it is checked
    for "standard" at depths 2 (numeric b_std) and 5 (None) only.
    """
    cases = []
    for depth in DEPTHS:
        for p in ("ntk", "standard"):
            width = _standard_width(depth) if p == "standard" else 512
            cross_depth = depth % 2 == (1 if p == "ntk" else 0)
            for b in B_STDS:
                if p == "ntk" and b is None and depth not in (1, 4):
                    # None and 0 are the same network under "ntk" (NT: identical
                    # kernels); ntkspec's None code path is checked at two depths.
                    continue
                if p == "ntk":
                    self_k = ("nngp", "ntk")
                else:
                    nngp_here = depth == (5 if b is None else 2)
                    self_k = ("nngp", "ntk") if nngp_here else ("ntk",)
                if b is None:
                    cross_k = ("ntk",) if depth == (1 if p == "ntk" else 4) else ()
                else:
                    cross_k = ("ntk",) if cross_depth else ()
                    if depth == (1 if p == "ntk" else 2):
                        cross_k = ("nngp", "ntk")
                for w in W_STDS:
                    arch = Arch(depth, w, b, p, width)
                    jit = w == W_STDS[1] and b == 0.1 and depth in (3, 6)
                    cases.append(Case(arch, "raw", True, self_k, jit))
                    if cross_k:
                        cases.append(Case(arch, "raw", False, cross_k, jit))
    return cases


def _fourier_cases() -> list[Case]:
    """Fourier features (256 Gaussian frequencies, sigma 10): the Chebyshev path."""
    numeric = [(w, b) for b in B_STDS[1:] for w in W_STDS]
    cases = []
    # The benchmark's network (ReluMLP(4), b_std 0.1) among all numeric (W, b) values.
    for w, b in numeric:
        arch = Arch(4, w, b, "ntk", 512)
        jit = w == W_STDS[1] and b == 0.1
        cases.append(Case(arch, "fourier", True, ("nngp", "ntk"), jit))
        cases.append(Case(arch, "fourier", False, ("ntk",), jit))
    for w, b in numeric:  # deep, standard parameterization, width 512
        cases.append(Case(Arch(6, w, b, "standard", 512), "fourier", True, ("ntk",)))
    for w in W_STDS:  # no bias; standard, width 64 / ntk
        arch = Arch(3, w, None, "standard", 64)
        cases.append(Case(arch, "fourier", True, ("ntk",)))
        cases.append(Case(arch, "fourier", False, ("ntk",)))
        cases.append(Case(Arch(1, w, None, "ntk", 512), "fourier", True, ("ntk",)))
    return cases


def _grid_cases() -> list[Case]:
    """Identity mapping on raw grid coordinates, origin included."""
    cases = []
    for depth, p, b, self_k, cross_k in (
        (1, "ntk", None, ("nngp", "ntk"), ()),
        (3, "standard", 0.0, ("ntk",), ("ntk",)),  # b_std = 0: origin stays at 0
        (6, "ntk", 1.0, ("ntk",), ()),
    ):
        arch = Arch(depth, math.sqrt(2.0), b, p, _standard_width(depth))
        cases.append(Case(arch, "grid", True, self_k))
        if cross_k:
            cases.append(Case(arch, "grid", False, cross_k))
    return cases


CASE_SETS = {"raw": _raw_cases(), "fourier": _fourier_cases(), "grid": _grid_cases()}


def _inputs() -> dict[str, np.ndarray]:
    """Each set: rows "a" (x1) and "b" (x2 of the cross kernels)."""
    rng = np.random.default_rng(20240611)
    # Angle-zero pairs are planted in the "b" rows (cross kernels): duplicates and
    # positive multiples (collinear) of "a" rows. They send ntkspec through its exact
    # near-pair pass, which compiles once per structure and pair count, so self kernels
    # get theirs from the grid set only (collinear grid points), to save time.
    raw_a = rng.normal(size=(30, 7))
    h = rng.normal(size=(16, 7))
    raw_b = np.concatenate([h, raw_a[:3], 2.0 * raw_a[3:6], 0.5 * raw_a[6:8]])

    # 200 points: 200^2 and 200 x 120 entries, both > 64^2 (Chebyshev path).
    pts_a = rng.random((200, 2))
    pts_b = np.concatenate([rng.random((115, 2)), pts_a[:5]])
    gamma = mappings.gaussian(2, 2, 256, 10.0)

    ticks = np.arange(5) / 5.0  # 0, 0.2, ..., 0.8: the origin and collinear points
    grid_a = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), -1).reshape(-1, 2)
    ticks_b = np.array([0.0, 0.3, 0.4, 0.9])
    grid_b = np.stack(np.meshgrid(ticks_b, ticks_b, indexing="ij"), -1).reshape(-1, 2)
    identity = mappings.identity()
    return {
        "raw": (raw_a, raw_b),
        "fourier": (
            np.asarray(gamma(pts_a), np.float64),
            np.asarray(gamma(pts_b), np.float64),
        ),
        "grid": (
            np.asarray(identity(grid_a), np.float64),
            np.asarray(identity(grid_b), np.float64),
        ),
    }


SETS = _inputs()


def _nt_configs() -> list[dict]:
    """One NT call per (architecture, input set): the self kernel of [a; b].

    Its blocks are the reference for both ntkspec calls (self kernel of a: NT's own
    self-kernel diagonal; cross kernel a x b: off-diagonal block, the same formula).
    """
    merged: dict[str, dict] = {}
    for cases in CASE_SETS.values():
        for case in cases:
            a = case.arch
            cfg = merged.setdefault(
                case.nt_name,
                {
                    "name": case.nt_name,
                    "depth": a.depth,
                    "W_std": a.W_std,
                    "b_std": a.b_std,
                    "parameterization": a.parameterization,
                    "width": a.width,
                    "x1": case.inputs,
                    "x2": None,
                    "get": [],
                    "jit": False,
                },
            )
            cfg["get"] = sorted(set(cfg["get"]) | set(case.kernels))
            cfg["jit"] = cfg["jit"] or case.jit
    return list(merged.values())


# --- the independent theta = 0 reference ---------------------------------------------


def exact_zero_angle(arch: Arch, q1, q2, d: int, kernel: str):
    r"""Kernel of a pair at angle 0 throughout the network, by the theta = 0 recursion.

    With theta = 0 the ReLU maps are kappa_1: K -> K/2 (= sqrt(v v')/2) and
    kappa_0 = (pi - 0)/(2 pi) = 1/2. The pair stays at angle 0 after a Dense layer when
    q1 = q2 (duplicates) or the bias variance is 0 (collinear x' = c x, c > 0). With
    q = |x|^2/d, K^1 = sw2 sqrt(q q') + sb2, Theta^1 = K^1 ("ntk") or
    d sqrt(q q') + [bias] ("standard"), then for each further layer
    K <- sw2 K/2 + sb2,
    Theta <- K_new + sw2 Theta/2 ("ntk") or width K/2 + sw2 Theta/2 + [bias].
    """
    sw2, sb2 = arch.W_std**2, arch.bias_var
    bias = 0.0 if arch.b_std is None else 1.0
    k_in = np.sqrt(q1 * q2)
    k = sw2 * k_in + sb2
    theta = k if arch.parameterization == "ntk" else d * k_in + bias
    for _ in range(arch.depth - 1):
        k_relu, theta_relu = k / 2.0, theta / 2.0
        k = sw2 * k_relu + sb2
        if arch.parameterization == "ntk":
            theta = k + sw2 * theta_relu
        else:
            theta = arch.width * k_relu + sw2 * theta_relu + bias
    return k if kernel == "nngp" else theta


def zero_angle_mask(x1, x2, bias_var: float, self_kernel: bool) -> np.ndarray:
    """Pairs at angle 0 in every layer: parallel, nonzero, same norm or no bias."""
    n1 = np.linalg.norm(x1, axis=1)
    n2 = np.linalg.norm(x2, axis=1)
    nonzero = (n1[:, None] > 0) & (n2[None, :] > 0)
    u1 = x1 / np.where(n1 > 0, n1, 1.0)[:, None]
    u2 = x2 / np.where(n2 > 0, n2, 1.0)[:, None]
    parallel = np.sum((u1[:, None, :] - u2[None, :, :]) ** 2, axis=-1) < 1e-24
    equal_norm = np.abs(n1[:, None] - n2[None, :]) <= 1e-14 * n1[:, None]
    mask = nonzero & parallel & (equal_norm | (bias_var == 0.0))
    if self_kernel:
        np.fill_diagonal(mask, nonzero.diagonal())
    return mask


# --- the session: NT subprocess + ntkspec, concurrently -------------------------------


def _ntkspec_kernels() -> dict:
    ours = {}
    for cases in CASE_SETS.values():
        for case in cases:
            arch = case.arch.ntkspec()
            x1, x2 = SETS[case.inputs]
            for kernel in case.kernels:
                fn = ntkspec.ntk if kernel == "ntk" else ntkspec.nngp
                out = fn(arch, x1, None if case.self_kernel else x2)
                ours[case.name, kernel] = np.asarray(out)
    return ours


@pytest.fixture(scope="module")
def parity():
    """ntkspec and NT kernels for every case (NT in a subprocess, running meanwhile)."""
    try:
        job = nt_env.start_reference(
            {name: np.concatenate(ab) for name, ab in SETS.items()}, _nt_configs()
        )
    except nt_env.Unavailable as exc:
        reason = f"neural-tangents 0.6.5 environment unavailable: {exc}"
        if os.environ.get("NTKSPEC_REQUIRE_PARITY"):
            pytest.fail(reason)
        pytest.skip(reason)
    t0 = time.perf_counter()
    try:
        ours = _ntkspec_kernels()
    except BaseException:
        job.cancel()
        raise
    seconds_ours = time.perf_counter() - t0
    return {"ours": ours, "nt": job.result(), "seconds_ours": seconds_ours}


def _modes(case: Case) -> tuple[str, ...]:
    return ("eager", "jit") if case.jit else ("eager",)


def _pairs(case: Case):
    x1, x2 = SETS[case.inputs]
    return x1, x1 if case.self_kernel else x2


def _reference(parity, case: Case, kernel: str, mode: str) -> np.ndarray:
    """NT's value for the case: a block of the self kernel of [a; b]."""
    full = parity["nt"][f"{case.nt_name}/{kernel}/{mode}"]
    n_a = SETS[case.inputs][0].shape[0]
    return full[:n_a, :n_a] if case.self_kernel else full[:n_a, n_a:]


def _zero_angle(case: Case) -> np.ndarray:
    return _zero_angle_cached(case.inputs, case.self_kernel, case.arch.bias_var == 0.0)


@functools.cache
def _zero_angle_cached(inputs: str, self_kernel: bool, no_bias: bool) -> np.ndarray:
    x1, x2 = SETS[inputs]
    mask = zero_angle_mask(
        x1, x1 if self_kernel else x2, 0.0 if no_bias else 1.0, self_kernel
    )
    mask.setflags(write=False)
    return mask


@pytest.mark.parametrize("case_set", list(CASE_SETS))
def test_generic_entries_match_nt(parity, case_set):
    """Entries at nonzero angle: ntkspec == NT to float64 round-off."""
    failures = []
    for case in CASE_SETS[case_set]:
        generic = ~_zero_angle(case)
        for kernel in case.kernels:
            ours = parity["ours"][case.name, kernel]
            for mode in _modes(case):
                ref = _reference(parity, case, kernel, mode)
                assert ours.shape == ref.shape == generic.shape
                err = np.abs(ours - ref)
                atol = ATOL_FRACTION[case.inputs] * np.abs(ref).max()
                allowed = RTOL * np.abs(ref) + atol
                bad = generic & (err > allowed)
                if np.any(bad):
                    i, j = np.argwhere(bad)[0]
                    failures.append(
                        f"{case.name} {kernel} {mode}: {bad.sum()} entries, e.g. "
                        f"[{i},{j}] ntkspec {ours[i, j]!r} NT {ref[i, j]!r}"
                    )
    assert not failures, "\n".join(failures[:30])


@pytest.mark.parametrize("case_set", list(CASE_SETS))
def test_zero_angle_entries_match_exact_closed_form(parity, case_set):
    """Diagonal / duplicate / collinear pairs: ntkspec == exact theta = 0 recursion."""
    failures, checked = [], 0
    for case in CASE_SETS[case_set]:
        x1, x2 = _pairs(case)
        rows, cols = np.nonzero(_zero_angle(case))
        if rows.size == 0:
            continue
        d = x1.shape[1]
        q1 = np.sum(x1[rows] ** 2, axis=1) / d
        q2 = np.sum(x2[cols] ** 2, axis=1) / d
        for kernel in case.kernels:
            exact = exact_zero_angle(case.arch, q1, q2, d, kernel)
            ours = parity["ours"][case.name, kernel][rows, cols]
            rel = np.abs(ours - exact) / np.abs(exact)
            checked += rows.size
            if np.any(rel > RTOL_EXACT):
                failures.append(f"{case.name} {kernel}: max rel err {rel.max():.3g}")
    assert checked > 0
    assert not failures, "\n".join(failures[:30])


@pytest.mark.parametrize("case_set", list(CASE_SETS))
def test_zero_angle_entries_match_nt_loosely(parity, case_set):
    """The same entries against NT, at NT's own accuracy there (~1e-8)."""
    failures = []
    for case in CASE_SETS[case_set]:
        zero = _zero_angle(case)
        for kernel in case.kernels:
            ours = parity["ours"][case.name, kernel][zero]
            for mode in _modes(case):
                ref = _reference(parity, case, kernel, mode)[zero]
                rel = np.abs(ours - ref) / np.abs(ref)
                if np.any(rel > RTOL_NT_ZERO_ANGLE):
                    failures.append(f"{case.name} {kernel} {mode}: {rel.max():.3g}")
    assert not failures, "\n".join(failures[:30])


def test_planted_pairs_are_present():
    """The zero-angle masks find the duplicate and collinear rows planted in SETS."""
    raw_a, raw_b = SETS["raw"]
    assert zero_angle_mask(raw_a, raw_b, 0.0, False).sum() == 3 + 3 + 2
    assert zero_angle_mask(raw_a, raw_b, 0.01, False).sum() == 3  # duplicates only
    assert zero_angle_mask(raw_a, raw_a, 0.01, True).sum() == raw_a.shape[0]
    four_a, four_b = SETS["fourier"]
    assert zero_angle_mask(four_a, four_a, 0.01, True).sum() == four_a.shape[0]
    assert zero_angle_mask(four_a, four_b, 0.01, False).sum() == 5
    grid_a = SETS["grid"][0]
    grid_zero = zero_angle_mask(grid_a, grid_a, 0.0, True)
    assert not grid_zero[0, 0]  # the origin: theta = pi/2 (NT's convention)
    # off-diagonal collinear pairs in the self kernel, e.g. (0.2, 0.2) and (0.4, 0.4)
    assert grid_zero.sum() > grid_a.shape[0] - 1


def test_chebyshev_path_is_exercised():
    """The Fourier inputs take ntkspec's fitted-profile fast path (a private check)."""
    from ntkspec import kernels
    from ntkspec._numerics import x64_scope

    four_a, four_b = SETS["fourier"]
    assert min(four_a.shape[0] ** 2, four_a.shape[0] * four_b.shape[0]) > 4096
    d = four_a.shape[1]
    q = float(np.sum(four_a[0] ** 2) / d)
    with x64_scope(np.float64):
        for case in CASE_SETS["fourier"]:
            for kernel in case.kernels:
                fit = kernels._profile_fit(case.arch.ntkspec(), q, d, kernel)
                assert fit is not None, case.name


def test_origin_uses_nt_convention(parity):
    """At the origin (zero input) NT takes theta = pi/2; the standard NTK shows it."""
    case = next(c for c in CASE_SETS["grid"] if c.arch.depth == 3 and c.self_kernel)
    assert not SETS["grid"][0][0].any()  # row 0 is the origin
    ours = parity["ours"][case.name, "ntk"]
    ref = _reference(parity, case, "ntk", "eager")
    np.testing.assert_allclose(ours[0], ref[0], rtol=RTOL, atol=0.0)
    # With b_std = 0 the origin's pre-activations are exactly 0 in every layer, so for
    # every pair with the origin theta = pi/2 (kappa_0 = 1/4), the NNGP is 0 and the
    # standard NTK is 1 (the bias) after layer 1: the whole row is one number.
    sw2 = case.arch.W_std**2
    theta = 1.0
    for _ in range(case.arch.depth - 1):
        theta = case.arch.width * 0.0 + sw2 * theta / 4.0 + 1.0
    np.testing.assert_allclose(ours[0], theta, rtol=RTOL_EXACT, atol=0.0)


def test_reference_environment_is_pinned(parity):
    meta = parity["nt"]["__meta__"]
    assert meta["neural_tangents"] == "0.6.5"
    assert meta["jax"] == "0.4.30"
    assert meta["x64"] is True
