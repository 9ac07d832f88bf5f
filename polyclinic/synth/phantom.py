"""A chest CT phantom in Hounsfield units: body, two lungs, a spine, and a nodule when the imaging
signal makes one visible.

Geometry is in millimetres, so scanners with different matrix sizes and pixel spacings image the same
anatomy at different resolutions, as real scanners do; each scanner then adds its own calibration
(gain, offset) and noise, the domain shift harmonisation has to undo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from polyclinic.synth.profiles import Scanner

AIR_HU, BODY_HU, LUNG_HU, BONE_HU, NODULE_HU = -1000.0, 40.0, -850.0, 400.0, 50.0
BODY_MM = (38.0, 28.0)  # semi-axes of the body ellipse
LUNG_CENTRE_MM = (15.0, -3.0)  # right lung at -x, left lung at +x
LUNG_MM = (11.0, 17.0)
SPINE_CENTRE_MM, SPINE_RADIUS_MM = (0.0, 20.0), 5.0
SUPERSAMPLE = 2  # partial-volume edges instead of jagged masks


@dataclass(frozen=True)
class Nodule:
    x_mm: float
    y_mm: float
    z_mm: float  # offset of its centre from the series' central slice
    diameter_mm: float
    hu: float


@dataclass(frozen=True)
class Anatomy:
    scale: float  # patient size relative to the reference phantom
    nodule: Nodule | None


def draw_anatomy(rng: np.random.Generator, nodule_mm: float, slice_thickness_mm: float) -> Anatomy:
    """A patient's body size and, if ``nodule_mm > 0``, a nodule placed wholly inside one lung."""
    scale = float(rng.uniform(0.9, 1.05))
    if nodule_mm <= 0:
        return Anatomy(scale=scale, nodule=None)
    side = 1.0 if rng.random() < 0.5 else -1.0
    radius = nodule_mm / 2
    room = np.array(LUNG_MM) * scale - radius - 1.0  # keep a rim of lung around the nodule
    angle, reach = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 1))
    cx, cy = side * LUNG_CENTRE_MM[0] * scale, LUNG_CENTRE_MM[1] * scale
    return Anatomy(
        scale=scale,
        nodule=Nodule(
            x_mm=round(float(cx + room[0] * reach * np.cos(angle)), 3),
            y_mm=round(float(cy + room[1] * reach * np.sin(angle)), 3),
            z_mm=round(float(rng.uniform(-0.4, 0.4) * slice_thickness_mm), 3),
            diameter_mm=nodule_mm,
            hu=round(float(NODULE_HU + rng.normal(0, 8)), 1),
        ),
    )


def _inside(
    x: np.ndarray, y: np.ndarray, centre: tuple[float, float], semi: tuple[float, float]
) -> np.ndarray:
    return ((x - centre[0]) / semi[0]) ** 2 + ((y - centre[1]) / semi[1]) ** 2 <= 1.0


def true_hu(anatomy: Anatomy, size: int, spacing_mm: float, z_mm: float) -> np.ndarray:
    """The noise-free slice at height ``z_mm`` (relative to the central slice), ``size`` x ``size``."""
    n = size * SUPERSAMPLE
    axis = (np.arange(n) - (n - 1) / 2) * spacing_mm / SUPERSAMPLE
    x, y = np.meshgrid(axis, axis)
    s = anatomy.scale
    hu = np.full((n, n), AIR_HU)
    hu[_inside(x, y, (0.0, 0.0), (BODY_MM[0] * s, BODY_MM[1] * s))] = BODY_HU
    for side in (-1.0, 1.0):
        centre = (side * LUNG_CENTRE_MM[0] * s, LUNG_CENTRE_MM[1] * s)
        hu[_inside(x, y, centre, (LUNG_MM[0] * s, LUNG_MM[1] * s))] = LUNG_HU
    spine = (SPINE_CENTRE_MM[0] * s, SPINE_CENTRE_MM[1] * s)
    hu[_inside(x, y, spine, (SPINE_RADIUS_MM * s, SPINE_RADIUS_MM * s))] = BONE_HU
    nodule = anatomy.nodule
    if nodule is not None:
        r2 = (nodule.diameter_mm / 2) ** 2 - (z_mm - nodule.z_mm) ** 2
        if r2 > 0:
            hu[_inside(x, y, (nodule.x_mm, nodule.y_mm), (np.sqrt(r2), np.sqrt(r2)))] = nodule.hu
    return hu.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))


def slice_offsets(scanner: Scanner) -> list[float]:
    """Heights of a series' slices relative to its central one, in mm."""
    middle = (scanner.slices - 1) / 2
    return [(k - middle) * scanner.slice_thickness_mm for k in range(scanner.slices)]


def stored_pixels(hu: np.ndarray, scanner: Scanner, rng: np.random.Generator) -> np.ndarray:
    """What the scanner writes: its calibration and noise, then the inverse Rescale into stored values;
    MONOCHROME1 scanners store ``2**BitsStored - 1 - value`` (low values are bright)."""
    recorded = scanner.gain * hu + scanner.offset_hu + rng.normal(0.0, scanner.noise_hu, hu.shape)
    stored = np.rint((recorded - scanner.rescale_intercept) / scanner.rescale_slope)
    if scanner.signed:
        low, high, dtype = -(2 ** (scanner.bits_stored - 1)), 2 ** (scanner.bits_stored - 1) - 1, np.int16
    else:
        low, high, dtype = 0, 2**scanner.bits_stored - 1, np.uint16
    stored = np.clip(stored, low, high)
    if scanner.photometric == "MONOCHROME1":
        stored = high - stored
    return stored.astype(dtype)


def hounsfield(
    stored: np.ndarray, *, photometric: str, bits_stored: int, slope: float, intercept: float
) -> np.ndarray:
    """The inverse of :func:`stored_pixels` (without the scanner's calibration): a MONOCHROME1 image is
    flipped back within its BitsStored range, then Rescale Slope/Intercept give HU, as readers must do."""
    values = stored.astype(np.float64)
    if photometric == "MONOCHROME1":
        values = (2**bits_stored - 1) - values
    return values * slope + intercept


def nodule_mask(hu: np.ndarray, threshold_hu: float = -500.0) -> np.ndarray:
    """Pixels of dense tissue wholly enclosed by lung: the nodule, measured from the image alone."""
    air = hu < threshold_hu
    regions, _ = ndimage.label(air)
    outside = np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))
    lungs = air & ~np.isin(regions, outside[outside > 0])
    return ndimage.binary_fill_holes(lungs) & ~lungs
