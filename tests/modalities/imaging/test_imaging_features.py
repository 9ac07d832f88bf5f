"""Features: the MONAI pipeline's (1, H, W) image in [0, 1] and the non-identifying acquisition facts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from monai.transforms import Resize, ScaleIntensityRangePercentilesd
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

import privacy.dicom_deid  # noqa: F401  (registers the imaging de-identifier)
from modalities.imaging import ImageSeries, ImagingModality
from modalities.imaging.settings import ImagingSettings
from modalities.imaging.transforms import PERCENTILES, ScalePercentilesd
from privacy.deidentify import DeidContext, deidentify
from privacy.pseudonym import Pseudonymiser


def _ct_series(tmp_path: Path, modality: ImagingModality) -> ImageSeries:
    source = Path(get_testdata_file("CT_small.dcm", download=False))
    (tmp_path / "imaging").mkdir()
    (tmp_path / "imaging" / "ct.dcm").write_bytes(source.read_bytes())
    series = modality.read(modality.discover(tmp_path / "imaging").items[0])
    ctx = DeidContext(Pseudonymiser(b"features-test-secret"), "p-0123456789abcdef01234567",
                      dt.date(2020, 1, 1))
    return deidentify("imaging", series, ctx)


def test_ct_features_with_percentile_scaling(tmp_path: Path) -> None:
    modality = ImagingModality(ImagingSettings())
    features = modality.features(_ct_series(tmp_path, modality))
    image = features["image"]
    assert isinstance(image, np.ndarray) and image.shape == (1, 64, 64) and image.dtype == np.float32
    assert image.min() == 0.0 and image.max() == 1.0
    assert features["image_meta"] == {
        "Modality": "CT", "Manufacturer": "GE MEDICAL SYSTEMS", "Rows": 128, "Columns": 128,
        "PhotometricInterpretation": "MONOCHROME2", "PixelSpacing": (0.661468, 0.661468),
        "SliceThickness": 5.0, "frames": 1, "TransferSyntaxUID": ExplicitVRLittleEndian}


def test_window_in_hounsfield_units_clips_to_the_unit_range(tmp_path: Path) -> None:
    modality = ImagingModality(ImagingSettings(window_center=40, window_width=400, spatial_size=(32, 48)))
    series = _ct_series(tmp_path, modality)
    image = modality.features(series)["image"]
    assert image.shape == (1, 32, 48) and 0.0 <= image.min() and image.max() <= 1.0
    # the same window by hand on the resized slice: -160 HU -> 0, 240 HU -> 1
    hu = np.asarray(Resize((32, 48), mode="area")(np.array(series.pixels[:1])))
    np.testing.assert_allclose(image, np.clip((hu + 160) / 400, 0, 1), atol=1e-6)


def test_constant_image_scales_to_zeros_not_nan() -> None:
    series = ImageSeries((Dataset(),), np.full((1, 20, 20), 7.0, dtype=np.float32), frames=3)
    features = ImagingModality(ImagingSettings()).features(series)
    assert np.isfinite(features["image"]).all() and (features["image"] == 0).all()
    assert features["image_meta"]["frames"] == 3 and features["image_meta"]["Modality"] is None


def test_window_needs_both_centre_and_width() -> None:
    with pytest.raises(ValueError, match="window-center and window-width"):
        ImagingModality(ImagingSettings(window_center=40))


@pytest.mark.parametrize("image", [
    np.random.default_rng(0).normal(1000, 300, (1, 64, 64)).astype(np.float32),
    np.random.default_rng(1).integers(-1024, 3000, (1, 37, 50)).astype(np.float32),
    np.pad(np.ones((1, 8, 8), np.float32), ((0, 0), (28, 28), (28, 28))),  # mostly background
    np.full((1, 16, 16), 5.0, np.float32),  # constant: MONAI's divide-by-zero branch
])
def test_percentile_scaling_matches_monais_transform(image: np.ndarray) -> None:
    ours = ScalePercentilesd("image", *PERCENTILES, b_min=0.0, b_max=1.0)({"image": image})["image"]
    monai = ScaleIntensityRangePercentilesd("image", *PERCENTILES, b_min=0.0, b_max=1.0, clip=True)(
        {"image": image})["image"]
    np.testing.assert_allclose(np.asarray(ours), np.asarray(monai), atol=1e-6)
