"""DICOM de-identification per PS3.15 Annex E, Basic Application Level Confidentiality Profile.

Every header of a series is rebuilt, never edited in place, by walking its elements (and, recursively,
every sequence item) through one action table (Table E.1-1 actions):

``X`` remove · ``Z`` keep the attribute with an empty value · ``D`` replace with a dummy value of the
same VR · ``U`` replace the UID by the site's keyed pseudonym UID · ``K`` keep.

Where the profile offers a choice (``X/Z``, ``X/D``, ``Z/D``, ``X/Z/U*``) the strictest one the IODs
allow is used: ``Z`` only for attributes that are Type 2 in common image IODs, ``D`` for Type 1.
Beyond the table, and because identifying data turns up where no table expects it:

* all private attributes, curves (50xx) and overlays (60xx) are removed (no Retain Safe Private option);
* every UID not registered by DICOM (root ``1.2.840.10008.``) is remapped, whatever attribute holds it,
  so study, series, instance, frame-of-reference and every referenced UID stay linked across files;
* any other person name, date, date-time or time is removed, as are public attributes the data
  dictionary does not know (their content cannot be judged).

Not handled, and why images carrying them are rejected earlier: identity burned into pixels
(``imaging.burned-in-annotation``). Values the table keeps (e.g. Manufacturer) are not identifying.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from pydicom import config
from pydicom.charset import convert_encodings, default_encoding
from pydicom.datadict import DicomDictionary, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from modalities.imaging import ImageSeries
from modalities.imaging.headers import transfer_syntax
from privacy.deidentify import DeidContext, register_deidentifier

DEID_METHOD = "DICOM PS3.15 E.1 Basic Profile (polyclinic)"
BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
DICOM_UID_ROOT = "1.2.840.10008."

_REMOVE = """
AcquisitionComments AcquisitionContextSequence AcquisitionDate AcquisitionDateTime
AcquisitionDeviceProcessingDescription AcquisitionProtocolDescription AcquisitionTime
ActualHumanPerformersSequence AdditionalPatientHistory AdmissionID AdmittingDate
AdmittingDiagnosesCodeSequence AdmittingDiagnosesDescription AdmittingTime AffectedSOPInstanceUID
Allergies Arbitrary AuthorObserverSequence BranchOfService CassetteID CommentsOnRadiationDose
CommentsOnThePerformedProcedureStep ConfidentialityConstraintOnPatientDataDescription ContentSequence
ContentCreatorIdentificationCodeSequence ContributionDateTime ContributionDescription CountryOfResidence
CurrentPatientLocation CurveDate CurveTime CustodialOrganizationSequence DataSetTrailingPadding
DateOfLastCalibration DerivationDescription DetectorID DeviceSerialNumber DigitalSignatureUID
DigitalSignaturesSequence DischargeDiagnosisDescription DistributionAddress DistributionName
EndAcquisitionDateTime EthnicGroup FrameComments GantryID GeneratorID HumanPerformerName
HumanPerformerOrganization IconImageSequence IdentifyingComments ImageComments
ImagePresentationComments ImagingServiceRequestComments Impressions InstanceCreationDate
InstanceCreationTime InstitutionAddress InstitutionCodeSequence InstitutionName
InstitutionalDepartmentName InsurancePlanIdentification IntendedRecipientsOfResultsIdentificationSequence
InterpretationApproverSequence InterpretationAuthor InterpretationDiagnosisDescription
InterpretationIDIssuer InterpretationRecorder InterpretationText InterpretationTranscriber
IssuerOfAdmissionID IssuerOfAdmissionIDSequence IssuerOfPatientID IssuerOfPatientIDQualifiersSequence
LastMenstrualDate MAC MedicalAlerts MedicalRecordLocator MilitaryRank ModifiedAttributesSequence
ModifiedImageDescription ModifyingDeviceID NameOfPhysiciansReadingStudy NamesOfIntendedRecipientsOfResults
Occupation OperatorIdentificationSequence OperatorsName OrderCallbackPhoneNumber OrderEnteredBy
OrderEntererLocation OriginalAttributesSequence OtherPatientIDs OtherPatientIDsSequence OtherPatientNames
OverlayDate OverlayTime ParticipantSequence PatientAddress PatientAge PatientBirthName PatientBirthTime
PatientComments PatientInstitutionResidence PatientInsurancePlanCodeSequence PatientMotherBirthName
PatientPrimaryLanguageCodeSequence PatientPrimaryLanguageModifierCodeSequence PatientReligiousPreference
PatientSexNeutered PatientSize PatientState PatientTelephoneNumbers PatientTransportArrangements
PatientWeight PerformedLocation PerformedProcedureStepDescription PerformedProcedureStepEndDate
PerformedProcedureStepEndTime PerformedProcedureStepID PerformedProcedureStepStartDate
PerformedProcedureStepStartTime PerformedStationAETitle PerformedStationGeographicLocationCodeSequence
PerformedStationName PerformedStationNameCodeSequence PerformingPhysicianIdentificationSequence
PerformingPhysicianName PersonAddress PersonIdentificationCodeSequence PersonTelephoneNumbers
PhysicianApprovingInterpretation PhysiciansOfRecord PhysiciansOfRecordIdentificationSequence
PhysiciansReadingStudyIdentificationSequence PlateID PreMedication PregnancyStatus ProtocolName
PrescriptionDescription ReasonForStudy ReasonForTheImagingServiceRequest ReferencedDigitalSignatureSequence
ReferencedPatientAliasSequence ReferencedPatientPhotoSequence ReferencedPatientSequence
ReferencedSOPInstanceMACSequence ReferencedStudySequence ReferringPhysicianAddress
ReferringPhysicianIdentificationSequence ReferringPhysicianTelephoneNumbers RegionOfResidence
RequestAttributesSequence RequestedContrastAgent RequestedProcedureComments RequestedProcedureDescription
RequestedProcedureID RequestedProcedureLocation RequestingPhysician RequestingService
ResponsibleOrganization ResponsiblePerson ResultsComments ResultsDistributionListSequence ResultsIDIssuer
ReviewerName ROIDescription ROIGenerationDescription RTPlanDescription RTPlanName
ScheduledHumanPerformersSequence ScheduledPatientInstitutionResidence
ScheduledPerformingPhysicianIdentificationSequence ScheduledPerformingPhysicianName
ScheduledProcedureStepDescription ScheduledProcedureStepEndDate ScheduledProcedureStepEndTime
ScheduledProcedureStepID ScheduledProcedureStepLocation ScheduledProcedureStepStartDate
ScheduledProcedureStepStartTime ScheduledStationAETitle ScheduledStationGeographicLocationCodeSequence
ScheduledStationName ScheduledStationNameCodeSequence ScheduledStudyLocation ScheduledStudyLocationAETitle
SeriesDate SeriesDescription SeriesTime ServiceEpisodeDescription ServiceEpisodeID SmokingStatus
SourceApplicationEntityTitle SpecialNeeds StartAcquisitionDateTime StationName StudyComments
StructureSetDescription StructureSetName StudyDescription StudyIDIssuer TextComments TextString
TimeOfLastCalibration TimezoneOffsetFromUTC TopicAuthor TopicKeywords TopicSubject TopicTitle VisitComments
"""
_EMPTY = """
AccessionNumber ContentCreatorName ContentDate ContentTime ContrastBolusAgent
FillerOrderNumberImagingServiceRequest PatientBirthDate PatientID PatientName PatientSex
PlacerOrderNumberImagingServiceRequest ReferringPhysicianName ROIInterpreter StudyDate StudyID StudyTime
VerifyingObserverIdentificationCodeSequence
"""
_DUMMY = """
PersonName RTPlanDate RTPlanLabel RTPlanTime StructureSetDate StructureSetLabel StructureSetTime
VerificationDateTime VerifyingObserverName VerifyingObserverSequence VerifyingOrganization
"""
_UID = """
ConcatenationUID DeviceUID DimensionOrganizationUID DoseReferenceUID FiducialUID FrameOfReferenceUID
InstanceCreatorUID IrradiationEventUID MediaStorageSOPInstanceUID ReferencedFrameOfReferenceUID
ReferencedSOPInstanceUID RelatedFrameOfReferenceUID SeriesInstanceUID SOPInstanceUID StorageMediaFileSetUID
StudyInstanceUID SynchronizationFrameOfReferenceUID TemplateExtensionCreatorUID
TemplateExtensionOrganizationUID TrackingUID TransactionUID UID
"""
_KEEP = "CodingSchemeUID"  # names a code system (e.g. SNOMED CT's OID), never an instance


def _table(**groups: str) -> dict[int, str]:
    """Keyword lists -> {tag: action}; a keyword pydicom does not know fails at import, not silently."""
    table = {}
    for action, keywords in groups.items():
        for keyword in keywords.split():
            tag = tag_for_keyword(keyword)
            if tag is None:
                raise KeyError(f"{keyword!r} is not in pydicom's data dictionary; fix the action table")
            table[tag] = action
    return table


ACTIONS: dict[int, str] = _table(X=_REMOVE, Z=_EMPTY, D=_DUMMY, U=_UID, K=_KEEP)
"""PS3.15 Table E.1-1 actions by tag (the strictest allowed choice where the profile offers several)."""

_DUMMIES = {"DA": "19000101", "TM": "000000", "DT": "19000101000000", "PN": "ANONYMOUS",
            "IS": "0", "DS": "0", "CS": "ANONYMOUS"}
_CATCH_ALL_REMOVE = {"PN", "DA", "DT", "TM"}
_CODE_TAGS = (0x00080100, 0x00080102, 0x00080104)  # CodeValue, CodingSchemeDesignator, CodeMeaning
_DEFAULT_ENCODING = convert_encodings("ISO_IR 6")


@register_deidentifier("imaging")
def deidentify_series(series: ImageSeries, ctx: DeidContext) -> ImageSeries:
    """De-identified copies of every header; the read-only pixel array is shared, not copied."""
    deid = Deidentifier(ctx)
    return replace(series, datasets=tuple(deid.dataset(ds) for ds in series.datasets))


class Deidentifier:
    """Applies the profile to the headers of one series with one context.

    Values the profile writes (empty and dummy values, the pseudonym, the profile markers, remapped
    UIDs) become elements as pydicom's reader leaves them: raw bytes, decoded on first access.
    Raw elements are immutable, so one is shared by every header of the series, and a UID shared by
    the series (study, series, frame of reference) is decoded and pseudonymised once; the memo lives
    only as long as the series' de-identification.
    """

    def __init__(self, ctx: DeidContext) -> None:
        self.ctx = ctx
        self._uids: dict[bytes | str, str] = {}
        self._markers = {BaseTag(tag): _raw(tag, value) for tag, value in (
            (0x00100010, ctx.pseudonym), (0x00100020, ctx.pseudonym), (0x00120062, "YES"),
            (0x00120063, DEID_METHOD), (0x00280303, "REMOVED"))}
        self._method_code = {BaseTag(tag): _raw(tag, value)
                             for tag, value in zip(_CODE_TAGS, BASIC_PROFILE_CODE, strict=True)}

    def dataset(self, ds: Dataset) -> Dataset:
        """A new data set holding the profile's view of ``ds``; ``ds`` itself is left as it was."""
        kept = self._clean(ds, _DEFAULT_ENCODING)
        kept.update(self._markers)
        method = Sequence([Dataset(dict(self._method_code))])
        kept[BaseTag(0x00120064)] = DataElement(0x00120064, "SQ", method, validation_mode=config.IGNORE)
        clean = Dataset(kept)
        meta = {BaseTag(0x00020010): _raw(0x00020010, transfer_syntax(ds))}
        for meta_tag, tag in ((0x00020002, 0x00080016), (0x00020003, 0x00080018)):
            if tag in kept:  # the same (pseudonymised) bytes as the SOP Class / Instance UID
                meta[BaseTag(meta_tag)] = kept[tag]._replace(tag=BaseTag(meta_tag))
        clean.file_meta = FileMetaDataset(meta)
        return clean

    def _clean(self, ds: Dataset, encoding: str | list[str]) -> dict[BaseTag, DataElement | RawDataElement]:
        """One level of ``ds`` through the action table, recursing into sequence items.

        Kept elements are collected into a plain dict handed to ``Dataset``, the way pydicom's reader
        builds data sets: undecoded (raw) elements are immutable and shared, so keeping the ~90% of a
        header that needs no action costs a dict insert, not a decode and a copy.
        """
        if "SpecificCharacterSet" in ds:
            encoding = convert_encodings(ds.SpecificCharacterSet)
        kept: dict[BaseTag, DataElement | RawDataElement] = {}
        for tag, elem in ds.items():
            key = int(tag)  # plain int: BaseTag's Python-level __eq__ would slow every dict lookup
            group = key >> 16
            if group & 1 or key & 0xFFFF == 0 or group & 0xFF00 in (0x5000, 0x6000):
                continue  # private, group length, curve or overlay
            entry = DicomDictionary.get(key)
            action = ACTIONS.get(key)
            if entry is None or action == "X" or (action is None and entry[0] in _CATCH_ALL_REMOVE):
                continue
            vr = entry[0]
            if action == "Z" and vr != "SQ":
                kept[tag] = _raw(key, "")
            elif action == "D" and vr != "SQ":
                kept[tag] = _raw(key, _DUMMIES.get(vr, "ANONYMIZED"))
            elif vr == "SQ":
                items = [] if action == "Z" else ds[tag].value or []
                cleaned = [Dataset(self._clean(item, encoding), parent_encoding=encoding) for item in items]
                kept[tag] = _element(tag, Sequence(cleaned), vr)
            elif vr == "UI" and action != "K":
                kept[tag] = _raw(key, self._remapped(ds, tag, elem))
            elif isinstance(elem, RawDataElement):
                kept[tag] = elem
            else:  # decoded when the file was read: the value is valid, copied so the input stays apart
                kept[tag] = _element(tag, copy.copy(elem.value), elem.VR)
        return kept

    def _remapped(self, ds: Dataset, tag: BaseTag, elem: DataElement | RawDataElement) -> str:
        """The element's UIDs (backslash-separated) with every non-DICOM one pseudonymised.

        Memoised on the stored bytes (or the decoded text): a series' files repeat the same study,
        series and frame-of-reference UIDs, which are then neither decoded nor hashed again.
        """
        key = elem.value if isinstance(elem, RawDataElement) else str(elem.value)
        if key not in self._uids:
            value = ds[tag].value or []
            values = [value] if isinstance(value, str) else value
            self._uids[key] = "\\".join(self._pseudonym_uid(v) for v in values)
        return self._uids[key]

    def _pseudonym_uid(self, uid: str) -> str:
        """DICOM-registered UIDs name classes and syntaxes, not instances: only the others change."""
        if not uid or uid.startswith(DICOM_UID_ROOT):
            return uid
        return self.ctx.pseudonymiser.uid(uid)


def _raw(tag: int, text: str) -> RawDataElement:
    """A text element as pydicom's reader stores it, so it can be shared without copies: padded to
    even length, in the default character set (our values are ASCII; a kept DICOM UID was decoded
    from it), decoded on first access with the dictionary's VR."""
    data = text.encode(default_encoding)
    if len(data) % 2:
        data += b"\0" if DicomDictionary[tag][0] == "UI" else b" "
    return RawDataElement(BaseTag(tag), DicomDictionary[tag][0], len(data), data, 0, False, True)


def _element(tag: int, value: Any, vr: str) -> DataElement:
    """An element whose value is known valid (ours, or decoded from the file), so pydicom's validation
    is skipped."""
    return DataElement(tag, vr, value, validation_mode=config.IGNORE)
