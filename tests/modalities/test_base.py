import pytest

from modalities import base
from modalities.base import ReasonBook, register_modality


def test_reason_book_refuses_undocumented_codes():
    book = ReasonBook("imaging", {"imaging.not-dicom": "not a DICOM file"})
    assert book("not-dicom", "imaging/a.txt", "no preamble").code == "imaging.not-dicom"
    with pytest.raises(KeyError, match="undocumented"):
        book("not-dikom", "imaging/a.txt", "typo")


def test_registry_refuses_silent_overwrite(monkeypatch):
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))  # leave the real registry untouched
    class First:
        name = "test-modality"

    class Second:
        name = "test-modality"

    register_modality(First)
    with pytest.raises(ValueError, match="already registered"):
        register_modality(Second)
    assert register_modality(Second, force=True) is Second
