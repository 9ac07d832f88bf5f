"""Every reason a DICOM file or series is not used, in one place, so codes stay stable and documented.

A data steward sees these codes in ``polyclinic site check``; auditors count them. Each code is
``imaging.<reason>`` and its explanation says what the steward can do about it.
"""

from __future__ import annotations

from modalities.base import ItemRejected, ReasonBook

MODALITY = "imaging"

REASONS: dict[str, str] = {
    "imaging.not-dicom": "not a DICOM file: no 'DICM' preamble and file meta, and the bytes do not parse "
                         "as a plausible raw DICOM data set (a valid SOP Class UID)",
    "imaging.unreadable": "the file cannot be read or its DICOM structure is truncated or corrupt (an I/O "
                          "error, a header that stops mid-element, pixel data shorter than the header says); "
                          "also used by the folder walk for unreadable folders and dangling links",
    "imaging.symlink-loop": "a folder reached twice through symbolic links; it is walked once only",
    "imaging.dicomdir": "a DICOMDIR media directory: an index of other files, which are read on their own",
    "imaging.no-pixels": "a DICOM object without an image (structured reports, RT plans and structure sets, "
                         "waveforms, presentation states, key object selections, encapsulated documents, "
                         "image headers whose pixel data is missing)",
    "imaging.unsupported-sop-class": "pixel data that is not a picture of the patient (RT dose grids, "
                                     "segmentation label maps): using it as an image would mislead the model",
    "imaging.no-patient-id": "no PatientID, so the series cannot be linked to a patient's other data",
    "imaging.unsupported-transfer-syntax": "the pixel data is compressed in a transfer syntax no installed "
                                           "decoder handles; the message names the syntax and what would "
                                           "decode it",
    "imaging.burned-in-annotation": "BurnedInAnnotation is YES: text burned into the pixels may show the "
                                    "patient's identity, which header de-identification cannot remove",
    "imaging.decode-failed": "the decoder for this transfer syntax failed on the pixel data (corrupt "
                             "compressed stream) or produced values that are not finite numbers",
    "imaging.inconsistent-series": "slices of one series with a different matrix size than the series' "
                                   "majority; the majority is used and these slices are set aside",
}


rejection = ReasonBook(MODALITY, REASONS)
"""Make a Rejection with a documented ``imaging.<reason>`` code."""


def rejected(reason: str, where: str, message: str, hint: str = "") -> ItemRejected:
    """The exception ``read``/``features`` raise for one unusable item."""
    return ItemRejected(rejection(reason, where, message, hint))
