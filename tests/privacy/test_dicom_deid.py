"""PS3.15 basic-profile de-identification of DICOM headers, checked on pydicom's real files."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from modalities.imaging import ImageSeries
from privacy.deidentify import DeidContext, deidentify
from privacy.dicom_deid import ACTIONS, DICOM_UID_ROOT, Deidentifier, deidentify_series
from privacy.pseudonym import Pseudonymiser

PSEUDONYM = "p-5eed5eed5eed5eed5eed5eed"
IDENTIFYING_KEYWORDS = {
    "PatientID", "OtherPatientIDs", "IssuerOfPatientID", "AccessionNumber", "StudyID", "InstitutionName",
    "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber",
    "PatientAddress", "StudyDescription", "SeriesDescription", "ProtocolName", "VerifyingOrganization",
    "ImageComments",
}
FILES = ["CT_small.dcm", "MR_small.dcm", "test-SR.dcm", "rtplan.dcm", "rtstruct.dcm", "examples_overlay.dcm",
         "nested_priv_SQ.dcm", "reportsi.dcm", "waveform_ecg.dcm"]


@pytest.fixture
def ctx() -> DeidContext:
    return DeidContext(Pseudonymiser(b"dicom-deid-test-secret!"), PSEUDONYM, dt.date(2020, 1, 1))


def _elements(ds: Dataset) -> Iterator[DataElement]:
    yield from ds.iterall()
    if getattr(ds, "file_meta", None) is not None:
        yield from ds.file_meta.iterall()


def _values(elem: DataElement) -> list[str]:
    if elem.VR == "SQ" or elem.value is None or isinstance(elem.value, bytes):
        return []
    values = elem.value if isinstance(elem.value, (list, pydicom.multival.MultiValue)) else [elem.value]
    return [str(v) for v in values if str(v)]


def _identifying(ds: Dataset) -> tuple[set[str], set[str]]:
    """(texts, UIDs) of the original that must not survive: names, IDs, dates, times, places, UIDs,
    and private texts (unless a public attribute the profile keeps holds the same, e.g. Manufacturer)."""
    texts, uids, private, public = set(), set(), set(), set()
    for elem in _elements(ds):
        if elem.VR == "UI" and elem.keyword != "CodingSchemeUID":  # names a code system, kept
            uids.update(v for v in _values(elem) if not v.startswith(DICOM_UID_ROOT))
        elif elem.VR in ("PN", "DA", "DT", "TM") or elem.keyword in IDENTIFYING_KEYWORDS:
            texts.update(v for v in _values(elem) if len(v) >= 4)
        elif elem.tag.is_private and elem.VR in ("LO", "SH", "LT", "ST", "UT", "UN"):
            private.update(v for v in _values(elem) if len(v) >= 8)
        else:
            public.update(_values(elem))
    return texts | (private - public), uids


def _read(name: str) -> Dataset:
    return pydicom.dcmread(get_testdata_file(name, download=False), force=True)


@pytest.mark.parametrize("name", FILES)
def test_no_identifying_value_survives_anywhere(name: str, ctx: DeidContext) -> None:
    original = _read(name)
    texts, uids = _identifying(original)
    assert texts or uids
    clean = Deidentifier(ctx).dataset(original)
    for elem in _elements(clean):
        assert not elem.tag.is_private, elem
        assert elem.tag.group & 0xFF00 not in (0x5000, 0x6000), elem  # curves and overlays
        for value in _values(elem):
            if elem.VR == "UI":
                assert value not in uids, elem
            else:
                assert value not in texts, elem
                assert not any(len(t) >= 8 and t in value for t in texts), elem


def test_profile_markers_and_pseudonym(ctx: DeidContext) -> None:
    clean = Deidentifier(ctx).dataset(_read("CT_small.dcm"))
    assert clean.PatientName == PSEUDONYM and clean.PatientID == PSEUDONYM
    assert clean.PatientIdentityRemoved == "YES" and clean.DeidentificationMethod
    (code,) = clean.DeidentificationMethodCodeSequence
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    assert clean.StudyDate == "" and "InstitutionName" not in clean and "OtherPatientIDsSequence" not in clean
    assert clean.Manufacturer == "GE MEDICAL SYSTEMS"  # kept: not identifying
    assert clean.RescaleIntercept == -1024
    assert clean.file_meta.MediaStorageSOPInstanceUID == clean.SOPInstanceUID
    assert not isinstance(clean, pydicom.FileDataset)  # no file name (often identifying) travels along


def test_referenced_uids_in_sequences_are_remapped_consistently(ctx: DeidContext) -> None:
    original = _read("rtplan.dcm")
    clean = Deidentifier(ctx).dataset(original)
    before = original.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID
    after = clean.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID
    assert after == ctx.pseudonymiser.uid(before) and after.is_valid
    assert clean.ReferencedStructureSetSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.481.3"
    assert Deidentifier(ctx).dataset(original).SOPInstanceUID == clean.SOPInstanceUID  # keyed, deterministic


def _ct_series_of_five_files() -> ImageSeries:
    """A real five-file CT series' headers: de-identification takes any number of them."""
    folder = Path(get_testdata_file("DICOMDIR", download=False)).parent / "98892001" / "CT5N"
    headers = tuple(pydicom.dcmread(p) for p in sorted(folder.iterdir()))
    return ImageSeries(headers, np.zeros((1, 1, 1), np.float32), frames=5)


def test_series_uids_stay_linked_across_files_and_inputs_are_untouched(
        ctx: DeidContext, tmp_path: Path) -> None:
    series = _ct_series_of_five_files()
    snapshot = [[(e.tag, repr(e.value)) for e in ds.iterall()] for ds in series.datasets]
    clean = deidentify("imaging", series, ctx)
    assert isinstance(clean, ImageSeries) and clean.pixels is series.pixels and len(clean.datasets) == 5
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        mapped = {str(ds[keyword].value) for ds in clean.datasets}
        assert mapped == {ctx.pseudonymiser.uid(series.datasets[0][keyword].value)}
    sops = [ds.SOPInstanceUID for ds in clean.datasets]
    assert len(set(sops)) == 5 and not set(sops) & {ds.SOPInstanceUID for ds in series.datasets}
    assert [[(e.tag, repr(e.value)) for e in ds.iterall()] for ds in series.datasets] == snapshot


def test_a_series_shares_no_mutable_element_and_hashes_each_uid_once(
        ctx: DeidContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    series = _ct_series_of_five_files()
    hashed: list[str] = []
    original_uid = ctx.pseudonymiser.uid
    monkeypatch.setattr(ctx.pseudonymiser, "uid", lambda uid: hashed.append(uid) or original_uid(uid))
    first, second, *_ = deidentify("imaging", series, ctx).datasets
    distinct = {v for ds in series.datasets for e in ds.iterall() if e.VR == "UI"
                for v in _values(e) if not v.startswith(DICOM_UID_ROOT)}
    assert sorted(hashed) == sorted(distinct)  # study, series, frame of reference: once for five files
    first.PatientName, first.StudyDate = "CHANGED", "20200101"
    first.DeidentificationMethodCodeSequence[0].CodeValue = "X"
    assert second.PatientName == PSEUDONYM and second.StudyDate == ""
    assert second.DeidentificationMethodCodeSequence[0].CodeValue == "113100"


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian])
def test_clean_header_round_trips_through_every_native_encoding(syntax: UID, ctx: DeidContext) -> None:
    clean = Deidentifier(ctx).dataset(_read("rtplan.dcm"))
    clean.file_meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    clean.save_as(buffer, enforce_file_format=True)
    back = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    assert [(e.tag, e.value) for e in back.iterall() if e.VR != "SQ"] == \
        [(e.tag, e.value) for e in clean.iterall() if e.VR != "SQ"]
    assert back.PatientID == PSEUDONYM and back.file_meta.MediaStorageSOPInstanceUID == clean.SOPInstanceUID


def test_input_dataset_is_not_modified(ctx: DeidContext) -> None:
    path = get_testdata_file("examples_overlay.dcm", download=False)
    original = pydicom.dcmread(path)
    Deidentifier(ctx).dataset(original)
    assert original == pydicom.dcmread(path) and original.PatientName == "Sssssss^Jsssss"


def test_text_in_other_character_sets_survives_decoding(ctx: DeidContext) -> None:
    for path in get_charset_files("chr*.dcm"):
        series = ImageSeries((pydicom.dcmread(path),), np.zeros((1, 1, 1), np.float32), frames=1)
        clean = deidentify_series(series, ctx)
        assert all(_values(e) is not None for e in clean.datasets[0].iterall())
        assert clean.datasets[0].PatientName == PSEUDONYM


def test_action_table_covers_the_profile_core() -> None:
    by_keyword = {pydicom.datadict.keyword_for_tag(tag): action for tag, action in ACTIONS.items()}
    assert {by_keyword[k] for k in ("PatientName", "PatientID", "StudyDate", "AccessionNumber")} == {"Z"}
    assert {by_keyword[k] for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                                    "FrameOfReferenceUID", "ReferencedSOPInstanceUID")} == {"U"}
    assert {by_keyword[k] for k in ("OtherPatientIDsSequence", "InstitutionName", "DeviceSerialNumber",
                                    "OperatorsName", "PatientAddress", "ImageComments")} == {"X"}
    assert set(ACTIONS.values()) == {"X", "Z", "D", "U", "K"} and len(ACTIONS) > 200
