r"""Closed 3D shapes in the unit cube by procedural signed distances; occupancy and IoU.

The paper's occupancy task (Tancik et al. 2020, Table 1, "3D shape") fits
:math:`o(x) = \mathbf{1}[x \in \Omega]` on :math:`x \in [0, 1]^3` for four Stanford
meshes, which cannot be bundled. This module makes a fixed, seeded set of closed solids
offline instead, each given by a function :math:`s(x)` that is negative inside,
positive outside and zero on the surface :math:`\partial\Omega` (an exact signed
distance for the sphere, torus and star prism's caps; a signed "pseudo-distance" with
the right sign and a Lipschitz bound of a few units otherwise):

* ``sphere`` / ``torus``: :math:`s = \lVert x - c\rVert - r` and
  :math:`s = \sqrt{(\rho - R)^2 + z^2} - r`, volumes :math:`\tfrac43\pi r^3` and
  :math:`2\pi^2 R r^2` in closed form (used to check volume and IoU estimates);
* ``bumpy_sphere``: a sphere whose radius is modulated by products of angular sines of
  degree 7 to 11 (bumps about 0.1 of the radius wide);
* ``ridged_torus``: a torus whose tube radius carries twisted ridges,
  :math:`r(\varphi, \psi) = r_0 + a \cos(m\varphi + k\psi + \phi_0)`;
* ``gyroid_ball``: a ball intersected with a thick gyroid sheet,
  :math:`|\sin kx \cos ky + \sin ky \cos kz + \sin kz \cos kx| < t`, period 1/4;
* ``twisted_star``: a capped prism whose 9-pointed star cross-section twists along z.

The seed draws the phases and a rotation of each detailed shape about the cube's
centre. All shapes lie inside :math:`[0.05, 0.95]^3`, so they are closed within the
box. The paper's metric is the IoU at threshold 0.5,

.. math::

    \mathrm{IoU}(\hat o, o) = \frac{|\{\hat o > 0.5\} \cap \{o > 0.5\}|}
    {|\{\hat o > 0.5\} \cup \{o > 0.5\}|},

on :math:`2^{18}` uniform points of the box and on :math:`2^{18}` near-surface points,
surface samples plus :math:`\mathcal{N}(0, 0.01^2 I)` noise. Surface samples here are
area-uniform points on the marching-cubes mesh of :math:`s` on a fine grid
(scikit-image's ``marching_cubes``). The functions accept NumPy or JAX arrays and
return the same kind (JAX: jit-able, for fresh training points each step).

References:
    Tancik et al., "Fourier Features Let Networks Learn High Frequency Functions in Low
    Dimensional Domains", NeurIPS 2020, arXiv:2006.10739 (occupancy task, metric).
    Mescheder et al., "Occupancy Networks: Learning 3D Reconstruction in Function
    Space", CVPR 2019, arXiv:1812.03828 (IoU on uniform and near-surface points).
    Schoen, "Infinite periodic minimal surfaces without self-intersections", NASA TN
    D-5541, 1970 (the gyroid).
    Lorensen & Cline, "Marching cubes", SIGGRAPH 1987.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from ._validation import as_points, check_positive_int, check_real

__all__ = [
    "Shape",
    "sphere",
    "torus",
    "shape_set",
    "sdf",
    "occupancy",
    "iou",
    "uniform_points",
    "surface_points",
    "near_surface_points",
]

_CENTRE = (0.5, 0.5, 0.5)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class Shape:
    """A closed solid in the unit cube: a kind, its parameters and a rotation.

    A static value (no array leaves): it can be closed over or passed to ``jit``.

    Attributes:
        name: a label.
        kind: one of ``"sphere"``, ``"torus"``, ``"bumpy_sphere"``,
            ``"ridged_torus"``, ``"gyroid_ball"``, ``"twisted_star"``.
        params: the kind's parameters (floats), see the constructors.
        rotation: a 3 x 3 rotation (rows) applied about the cube's centre, or None.
    """

    name: str
    kind: str
    params: tuple[float, ...]
    rotation: tuple[tuple[float, float, float], ...] | None = None

    @property
    def exact_volume(self) -> float | None:
        """The volume in closed form (sphere, torus), else None."""
        if self.kind == "sphere":
            return 4.0 / 3.0 * math.pi * self.params[3] ** 3
        if self.kind == "torus":
            return 2.0 * math.pi**2 * self.params[3] * self.params[4] ** 2
        return None


def sphere(radius: float = 0.3, center=_CENTRE) -> Shape:
    r"""A ball :math:`\lVert x - c\rVert \le r` (closed-form volume).

    Args:
        radius: r > 0.
        center: c, three floats.

    Returns:
        A :class:`Shape` with params (c_x, c_y, c_z, r).

    Raises:
        ValueError: a non-positive radius or a centre that is not 3 numbers.
    """
    r = float(check_real(radius, "radius", low=0.0, low_inclusive=False))
    c = _check_center(center)
    return Shape("sphere", "sphere", (*c, r))


def torus(major: float = 0.28, minor: float = 0.1, center=_CENTRE) -> Shape:
    r"""A solid torus about the z axis, :math:`(\rho - R)^2 + z^2 \le r^2`.

    Args:
        major: R, the centre-line radius (> minor).
        minor: r > 0, the tube radius.
        center: c, three floats.

    Returns:
        A :class:`Shape` with params (c_x, c_y, c_z, R, r).

    Raises:
        ValueError: radii out of range, or a centre that is not 3 numbers.
    """
    r = float(check_real(minor, "minor", low=0.0, low_inclusive=False))
    big = float(check_real(major, "major", low=0.0, low_inclusive=False))
    if not big > r:
        raise ValueError(f"major must be > minor ({r}); got {big}")
    return Shape("torus", "torus", (*_check_center(center), big, r))


def _check_center(center) -> tuple[float, float, float]:
    if not isinstance(center, tuple | list | np.ndarray) or len(center) != 3:
        raise ValueError(f"center must be 3 numbers; got {center!r}")
    return tuple(float(check_real(c, f"center[{i}]")) for i, c in enumerate(center))


def _random_rotation(rng: np.random.Generator) -> tuple[tuple[float, ...], ...]:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return tuple(tuple(float(v) for v in row) for row in q)


def shape_set(seed: int = 0) -> tuple[Shape, ...]:
    """The four detailed shapes of the occupancy task, fixed by ``seed``.

    ``bumpy_sphere``, ``ridged_torus``, ``gyroid_ball`` and ``twisted_star`` (see the
    module docstring); the seed draws their phases and rotations.

    Args:
        seed: integer >= 0.

    Returns:
        A tuple of four :class:`Shape` values.

    Raises:
        TypeError: a non-integer seed.
        ValueError: a negative seed.

    Example:
        >>> from ntkspec import shapes
        >>> [s.name for s in shapes.shape_set(0)]
        ['bumpy_sphere', 'ridged_torus', 'gyroid_ball', 'twisted_star']
    """
    seed = check_positive_int(seed, "seed", minimum=0)
    rng = np.random.default_rng([seed, 3])
    phases = tuple(float(p) for p in rng.uniform(0.0, 2.0 * math.pi, 4))
    rots = [_random_rotation(rng) for _ in range(4)]
    return (
        # radius, bump amplitude, three angular degrees, three phases
        Shape(
            "bumpy_sphere",
            "bumpy_sphere",
            (0.3, 0.05, 7.0, 9.0, 11.0, *phases[:3]),
            rots[0],
        ),
        # R, r0, ridge amplitude, m (around the ring), k (around the tube), phase
        Shape(
            "ridged_torus",
            "ridged_torus",
            (0.27, 0.1, 0.025, 13.0, 5.0, phases[3]),
            rots[1],
        ),
        # ball radius, gyroid wavenumber (period 1/4), sheet half-thickness
        Shape("gyroid_ball", "gyroid_ball", (0.4, 2.0 * math.pi * 4.0, 0.7), rots[2]),
        # radius, star depth, points, twist (rad per unit z), half-height
        Shape(
            "twisted_star",
            "twisted_star",
            (0.27, 0.07, 9.0, 2.0 * math.pi, 0.35),
            rots[3],
        ),
    )


# --------------------------------------------------------------------------------------
# Signed (pseudo-)distances, NumPy or JAX.
# --------------------------------------------------------------------------------------


def _xp(x):
    return jnp if isinstance(x, jax.Array) else np


def _local(shape: Shape, x, xp):
    """Coordinates about the cube's centre, rotated into the shape's frame."""
    p = x - xp.asarray(_CENTRE, dtype=x.dtype)[None, :]
    if shape.rotation is not None:
        p = p @ xp.asarray(shape.rotation, dtype=x.dtype)
    return p[:, 0], p[:, 1], p[:, 2]


def _sdf(shape: Shape, x, xp):
    k = shape.kind
    q = shape.params
    if k == "sphere":
        d = x - xp.asarray(q[:3], dtype=x.dtype)[None, :]
        return xp.sqrt(xp.sum(d * d, axis=1)) - q[3]
    if k == "torus":
        d = x - xp.asarray(q[:3], dtype=x.dtype)[None, :]
        rho = xp.sqrt(d[:, 0] ** 2 + d[:, 1] ** 2)
        return xp.sqrt((rho - q[3]) ** 2 + d[:, 2] ** 2) - q[4]
    px, py, pz = _local(shape, x, xp)
    if k == "bumpy_sphere":
        radius, amp, l1, l2, l3, f1, f2, f3 = q
        r = xp.sqrt(px**2 + py**2 + pz**2)
        theta = xp.arctan2(xp.sqrt(px**2 + py**2), pz)
        phi = xp.arctan2(py, px)
        bump = (
            xp.sin(l1 * theta) * xp.cos(l1 * phi + f1)
            + xp.sin(l2 * theta + f2) * xp.sin(l2 * phi)
            + xp.cos(l3 * theta) * xp.sin(l3 * phi + f3) * xp.sin(theta)
        ) / 3.0
        return r - (radius + amp * bump)
    if k == "ridged_torus":
        big, r0, amp, m, kk, f = q
        rho = xp.sqrt(px**2 + py**2)
        phi = xp.arctan2(py, px)
        psi = xp.arctan2(pz, rho - big)
        tube = xp.sqrt((rho - big) ** 2 + pz**2)
        return tube - (r0 + amp * xp.cos(m * phi + kk * psi + f))
    if k == "gyroid_ball":
        radius, wave, half = q
        ball = xp.sqrt(px**2 + py**2 + pz**2) - radius
        gx, gy, gz = wave * px, wave * py, wave * pz
        g = xp.sin(gx) * xp.cos(gy) + xp.sin(gy) * xp.cos(gz) + xp.sin(gz) * xp.cos(gx)
        # |grad g| <= sqrt(6) * wave: dividing keeps a pseudo-distance of bounded slope.
        sheet = (xp.abs(g) - half) / (math.sqrt(6.0) * wave)
        return xp.maximum(ball, sheet)
    if k == "twisted_star":
        radius, depth, points, twist, half = q
        rho = xp.sqrt(px**2 + py**2)
        alpha = xp.arctan2(py, px) - twist * pz
        profile = radius - depth * (1.0 - xp.cos(points * alpha)) / 2.0
        side = (rho - profile) / math.sqrt(1.0 + (depth * points / 2.0) ** 2)
        cap = xp.abs(pz) - half
        return xp.maximum(side, cap)
    raise ValueError(f"unknown shape kind {k!r}")  # pragma: no cover


def _check_shape_value(shape) -> Shape:
    if not isinstance(shape, Shape):
        raise TypeError(
            f"shape must be a shapes.Shape (see shapes.shape_set, sphere, torus); got "
            f"{type(shape).__name__}"
        )
    return shape


def sdf(shape: Shape, points):
    r"""The shape's signed (pseudo-)distance :math:`s(x)` at points, < 0 inside.

    Args:
        shape: a :class:`Shape`.
        points: (n, 3) coordinates in the unit cube, NumPy or JAX (float).

    Returns:
        (n,) values of the same array kind and dtype as ``points``.

    Raises:
        TypeError: ``shape`` is not a :class:`Shape`, or ``points`` not an array.
        ValueError: ``points`` not of shape (n, 3), or not finite.
    """
    _check_shape_value(shape)
    points = as_points(points, "points", dim=3, dim_name="shape dimension 3")
    xp = _xp(points)
    if not xp.issubdtype(points.dtype, xp.floating):
        points = points.astype(np.float64 if xp is np else jnp.float32)
    return _sdf(shape, points, xp)


def occupancy(shape: Shape, points):
    r"""Occupancy :math:`o(x) = \mathbf{1}[s(x) \le 0]` at points, as 0/1 floats.

    Args:
        shape: a :class:`Shape`.
        points: (n, 3) coordinates, NumPy or JAX.

    Returns:
        (n,) zeros and ones, of the array kind and float dtype of ``points``.

    Raises:
        TypeError: ``shape`` is not a :class:`Shape`, or ``points`` not an array.
        ValueError: ``points`` not of shape (n, 3), or not finite.

    Example:
        >>> import numpy as np
        >>> from ntkspec import shapes
        >>> x = np.array([[0.5, 0.5, 0.5], [0.0, 0.0, 0.0]])
        >>> shapes.occupancy(shapes.sphere(0.3), x)
        array([1., 0.])
    """
    s = sdf(shape, points)
    return (s <= 0).astype(s.dtype)


def iou(pred_occupancy, true_occupancy, *, threshold: float = 0.5) -> float:
    r"""Intersection over union of two occupancies thresholded at ``threshold``.

    .. math::

        \mathrm{IoU} = \frac{|\{\hat o > \tau\} \cap \{o > \tau\}|}
        {|\{\hat o > \tau\} \cup \{o > \tau\}|}

    over the given points (1.0 when both sets are empty).

    Args:
        pred_occupancy: (n,) predicted occupancies (probabilities or 0/1).
        true_occupancy: (n,) true occupancies (0/1 or booleans).
        threshold: :math:`\tau`, the paper's 0.5.

    Returns:
        The IoU, a Python float in [0, 1].

    Raises:
        TypeError: non-array input.
        ValueError: shapes that differ or are not 1-D, or NaN in the predictions.

    Example:
        >>> from ntkspec import shapes
        >>> shapes.iou([0.9, 0.2, 0.7, 0.1], [1, 1, 0, 0])
        0.3333333333333333
    """
    tau = float(check_real(threshold, "threshold"))
    p = np.asarray(pred_occupancy)
    t = np.asarray(true_occupancy)
    for name, a in (("pred_occupancy", p), ("true_occupancy", t)):
        if a.ndim != 1:
            raise ValueError(f"{name} must have shape (n,); got shape {a.shape}")
        if not (a.dtype == bool or np.issubdtype(a.dtype, np.number)):
            raise TypeError(f"{name} must hold numbers or booleans; got {a.dtype}")
        if np.issubdtype(a.dtype, np.floating) and np.isnan(a).any():
            raise ValueError(f"{name} contains NaN")
    if p.shape != t.shape:
        raise ValueError(
            f"pred_occupancy and true_occupancy must have the same shape; got "
            f"{p.shape} and {t.shape}"
        )
    pb = p.astype(np.float64) > tau
    tb = t.astype(np.float64) > tau
    union = int(np.count_nonzero(pb | tb))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(pb & tb)) / union


# --------------------------------------------------------------------------------------
# Point samplers (NumPy, seeded).
# --------------------------------------------------------------------------------------


def uniform_points(num_points: int, *, seed: int = 0) -> np.ndarray:
    """``num_points`` uniform points in the unit cube, (n, 3) float64, fixed by seed.

    Training code on an accelerator can draw its fresh points per step with
    ``jax.random.uniform(key, (n, 3))`` instead.

    Args:
        num_points: n >= 1 (the paper: 2^18 for evaluation, 32,768 per step).
        seed: integer >= 0.

    Returns:
        A NumPy array of shape (n, 3).

    Raises:
        TypeError: a non-integer argument.
        ValueError: an argument out of range.
    """
    n = check_positive_int(num_points, "num_points")
    seed = check_positive_int(seed, "seed", minimum=0)
    return np.random.default_rng([seed, 0]).random((n, 3))


def surface_points(
    shape: Shape, num_points: int, *, seed: int = 0, resolution: int = 128
) -> np.ndarray:
    """Area-uniform points on the shape's surface (its marching-cubes mesh).

    The signed distance is sampled on a ``resolution``^3 grid spanning [0, 1]^3,
    triangulated at level 0 by ``skimage.measure.marching_cubes`` and sampled with
    probability proportional to triangle area, uniformly inside each triangle. Points
    lie within about the grid spacing squared times the curvature of the true surface.

    Args:
        shape: a :class:`Shape`.
        num_points: n >= 1.
        seed: integer >= 0.
        resolution: grid points per axis (>= 8).

    Returns:
        A NumPy array of shape (n, 3), float64.

    Raises:
        TypeError: a bad ``shape`` or a non-integer argument.
        ValueError: an argument out of range.
    """
    from skimage.measure import marching_cubes

    _check_shape_value(shape)
    n = check_positive_int(num_points, "num_points")
    seed = check_positive_int(seed, "seed", minimum=0)
    res = check_positive_int(resolution, "resolution", minimum=8)
    axis = np.linspace(0.0, 1.0, res)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    values = _sdf(shape, grid, np).reshape(res, res, res)
    h = 1.0 / (res - 1)
    verts, faces, _, _ = marching_cubes(values, level=0.0, spacing=(h, h, h))
    tri = verts[faces]  # (T, 3 vertices, 3)
    area = 0.5 * np.linalg.norm(
        np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1
    )
    rng = np.random.default_rng([seed, 1])
    pick = rng.choice(len(tri), size=n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1.0
    u, v = np.where(flip, 1.0 - u, u), np.where(flip, 1.0 - v, v)
    t = tri[pick]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])


def near_surface_points(
    shape: Shape,
    num_points: int,
    *,
    std: float = 0.01,
    seed: int = 0,
    resolution: int = 128,
) -> np.ndarray:
    r"""Surface points plus :math:`\mathcal{N}(0, \sigma^2 I)` noise, the paper's set.

    Args:
        shape: a :class:`Shape`.
        num_points: n >= 1 (the paper: 2^18).
        std: :math:`\sigma` >= 0 (the paper: 0.01).
        seed: integer >= 0.
        resolution: marching-cubes grid points per axis (>= 8).

    Returns:
        A NumPy array of shape (n, 3), float64.

    Raises:
        TypeError: a bad ``shape`` or a non-integer argument.
        ValueError: an argument out of range.
    """
    sigma = float(check_real(std, "std", low=0.0))
    base = surface_points(shape, num_points, seed=seed, resolution=resolution)
    noise = np.random.default_rng([seed, 2]).standard_normal(base.shape)
    return base + sigma * noise
