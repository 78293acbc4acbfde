"""Synthetic Structured Reports: a CT dose report (TID 10011) and a deep report.

Both carry a full patient / study header and, with ``canaries=True``, a
canary token in every identifying value - the header's and the content
tree's (person names, free text that names the patient, observer names) - so
leak tests can grep every written byte.  Dates, times and UIDs in the tree
are real values derived from the seed (a canary cannot be a date or a UID);
tests check those by value.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from gantry.testing._builders import apply_overrides, write_dataset
from gantry.testing._canaries import CanaryBook

__all__ = ["make_dose_sr", "make_encapsulated_pdf", "make_text_sr"]

_COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
_PDF = "1.2.840.10008.5.1.4.1.1.104.1"


def _uid(seed: int, key: str) -> str:
    digest = hashlib.blake2b(f"gantry-sr:{seed}:{key}".encode(), digest_size=12).digest()
    return f"2.25.{int.from_bytes(digest, 'big')}"


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _item(
    relationship: str, value_type: str, concept: tuple[str, str, str], **values: Any
) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = Sequence([_code(*concept)])
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _num(concept: tuple[str, str, str], value: float, unit: tuple[str, str, str]) -> Dataset:
    measured = Dataset()
    measured.NumericValue = f"{value:g}"
    measured.MeasurementUnitsCodeSequence = Sequence([_code(*unit)])
    return _item("CONTAINS", "NUM", concept, MeasuredValueSequence=Sequence([measured]))


def _container(
    relationship: str, concept: tuple[str, str, str], children: list[Dataset]
) -> Dataset:
    item = _item(relationship, "CONTAINER", concept, ContinuityOfContent="SEPARATE")
    item.ContentSequence = Sequence(children)
    return item


def _document(
    book: CanaryBook, seed: int, sop_class: str, title: tuple[str, str, str], template: str
) -> Dataset:
    """Patient, study, series, equipment and SR document modules, root container."""
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(_uid(seed, f"sop:{sop_class}"))
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = _uid(seed, f"sop:{sop_class}")
    ds.InstanceCreationDate = "20210304"
    ds.StudyDate = "20210304"
    ds.SeriesDate = "20210304"
    ds.ContentDate = "20210304"
    ds.StudyTime = "101500"
    ds.SeriesTime = "101700"
    ds.ContentTime = "102000"
    ds.AccessionNumber = book.value("AccessionNumber", f"ACC{seed:05d}")
    ds.Modality = "SR"
    ds.Manufacturer = "Gantry Synthetic"
    ds.ManufacturerModelName = "SR Builder"
    ds.DeviceSerialNumber = book.value("DeviceSerialNumber", f"SN{seed:04d}")
    ds.SoftwareVersions = "1"
    ds.InstitutionName = book.value("InstitutionName", "General Hospital")
    ds.ReferringPhysicianName = book.value("ReferringPhysicianName", "Referring^Rita")
    ds.PatientName = (
        f"{book.value('PatientName.family', 'Doe')}^{book.value('PatientName.given', 'Jane')}"
    )
    ds.PatientID = book.value("PatientID", f"PID{seed:05d}")
    ds.PatientBirthDate = "19600214"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = _uid(seed, "study")
    ds.SeriesInstanceUID = _uid(seed, f"series:{sop_class}")
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    ds.PerformedProcedureCodeSequence = Sequence()
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code(*title)])
    ds.ContinuityOfContent = "SEPARATE"
    if not template:
        return ds
    template_item = Dataset()
    template_item.MappingResource = "DCMR"
    template_item.TemplateIdentifier = template
    ds.ContentTemplateSequence = Sequence([template_item])
    return ds


def _observer(book: CanaryBook) -> list[Dataset]:
    name = book.value("observer", "Okafor^Olga")
    return [
        _item("HAS OBS CONTEXT", "CODE", ("121005", "DCM", "Observer Type"),
              ConceptCodeSequence=Sequence([_code("121006", "DCM", "Person")])),
        _item("HAS OBS CONTEXT", "PNAME", ("121008", "DCM", "Person Observer Name"),
              PersonName=name),
    ]  # fmt: skip


def _save(ds: Dataset, path: str | Path | None, overrides: dict[str, Any]) -> Dataset:
    apply_overrides(ds, overrides)
    if path is not None:
        write_dataset(ds, path)
    return ds


def make_dose_sr(
    path: str | Path | None = None,
    *,
    seed: int = 0,
    canaries: bool = False,
    ctdi_vol: tuple[float, ...] = (12.5, 8.25),
    dlp: tuple[float, ...] = (310.0, 190.5),
    **overrides: Any,
) -> Dataset:
    """Return (and optionally write) an X-Ray Radiation Dose SR (TID 10011, CT).

    One CT Acquisition container (TID 10013) per entry of `ctdi_vol` / `dlp`,
    each with its Mean CTDIvol (113830, mGy) and DLP (113838, mGy.cm), under
    a CT Accumulated Dose Data container with the total DLP (113813).
    ``overrides`` set top-level keywords last (to file the report under an
    existing patient and study, say).

    Examples
    --------
    >>> ds = make_dose_sr()
    >>> ds.ContentTemplateSequence[0].TemplateIdentifier
    '10011'
    >>> acq = [i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "113819"]
    >>> len(acq)
    2
    """
    book = CanaryBook(seed, enabled=canaries)
    ds = _document(book, seed, _DOSE_SR, ("113701", "DCM", "X-Ray Radiation Dose Report"), "10011")
    children = [
        _item("HAS CONCEPT MOD", "CODE", ("121058", "DCM", "Procedure reported"),
              ConceptCodeSequence=Sequence([_code("P5-08000", "SRT", "Computed Tomography X-Ray")])),
        *_observer(book),
        _item("HAS OBS CONTEXT", "DATETIME", ("113809", "DCM", "Start of X-Ray Irradiation"),
              DateTime="20210304101612"),
        _container("CONTAINS", ("113811", "DCM", "CT Accumulated Dose Data"), [
            _num(("113812", "DCM", "Total Number of Irradiation Events"), len(dlp),
                 ("{events}", "UCUM", "events")),
            _num(("113813", "DCM", "CT Dose Length Product Total"), sum(dlp),
                 ("mGy.cm", "UCUM", "mGy.cm")),
        ]),
    ]  # fmt: skip
    for index, (ctdi, length) in enumerate(zip(ctdi_vol, dlp, strict=True)):
        dose = _container("CONTAINS", ("113829", "DCM", "CT Dose"), [
            _num(("113830", "DCM", "Mean CTDIvol"), ctdi, ("mGy", "UCUM", "mGy")),
            _num(("113838", "DCM", "DLP"), length, ("mGy.cm", "UCUM", "mGy.cm")),
        ])  # fmt: skip
        children.append(
            _container("CONTAINS", ("113819", "DCM", "CT Acquisition"), [
                _item("CONTAINS", "CODE", ("125203", "DCM", "Acquisition Protocol"),
                      ConceptCodeSequence=Sequence([_code("113826", "DCM", "Helical")])),
                _item("CONTAINS", "UIDREF", ("113769", "DCM", "Irradiation Event UID"),
                      UID=_uid(seed, f"event{index}")),
                dose,
            ])
        )  # fmt: skip
    ds.ContentSequence = Sequence(children)
    return _save(ds, path, overrides)


def make_text_sr(
    path: str | Path | None = None,
    *,
    seed: int = 0,
    canaries: bool = False,
    depth: int = 6,
    **overrides: Any,
) -> Dataset:
    """Return (and optionally write) a Comprehensive SR with identifying content `depth` deep.

    Containers nest `depth` levels below the root; the innermost holds a
    TEXT that names the patient (name, ID, a phone number and a date), a
    PNAME, DATE, TIME, DATETIME, UIDREF, an IMAGE reference, a CODE, a NUM
    and a SCOORD.  Its DATE and DATETIME lie two years before the study, so no
    date shift (1-365 days back) can turn one original date into another.
    Observer context (PNAME) sits at the top.  ``overrides``
    set top-level keywords last (the tree's text is written before them).

    Examples
    --------
    >>> ds = make_text_sr(depth=5)
    >>> item = ds
    >>> for _ in range(5):
    ...     item = item.ContentSequence[-1]
    >>> sorted({i.ValueType for i in item.ContentSequence})[:4]
    ['CODE', 'DATE', 'DATETIME', 'IMAGE']
    """
    book = CanaryBook(seed, enabled=canaries)
    ds = _document(
        book, seed, _COMPREHENSIVE_SR, ("18748-4", "LN", "Diagnostic Imaging Report"), "2000"
    )
    family = str(ds.PatientName).split("^")[0]
    reader = book.value("observer", "Okafor^Olga").split("^")[0]
    image = Dataset()
    image.ReferencedSOPClassUID = _CT_IMAGE
    image.ReferencedSOPInstanceUID = _uid(seed, "image")
    leaves = [
        _item("CONTAINS", "TEXT", ("121071", "DCM", "Finding"),
              TextValue=(f"Patient {family} (MRN {ds.PatientID}) seen on 2021-03-04; "
                         f"call 555-123-4567. Nodule stable, no change.")),
        _item("CONTAINS", "PNAME", ("121013", "DCM", "Person Observer Name"),
              PersonName=book.value("inner-person", "Reiter^Rolf")),
        _item("CONTAINS", "DATE", ("111060", "DCM", "Study Date"), Date="20190301"),
        _item("CONTAINS", "TIME", ("111061", "DCM", "Study Time"), Time="093000"),
        _item("CONTAINS", "DATETIME", ("111526", "DCM", "DateTime Started"),
              DateTime="20190301093000"),
        _item("CONTAINS", "UIDREF", ("121018", "DCM", "Procedure Study Instance UID"),
              UID=ds.StudyInstanceUID),
        _item("CONTAINS", "IMAGE", ("121112", "DCM", "Source of Measurement"),
              ReferencedSOPSequence=Sequence([image])),
        _item("CONTAINS", "CODE", ("121071", "DCM", "Finding"),
              ConceptCodeSequence=Sequence([_code("27925004", "SCT", "Nodule")])),
        _num(("410668003", "SCT", "Length"), 7.5, ("mm", "UCUM", "mm")),
        _item("CONTAINS", "SCOORD", ("111030", "DCM", "Image Region"), GraphicType="POINT",
              GraphicData=[10.5, 20.25]),
    ]  # fmt: skip
    node = _container("CONTAINS", ("121070", "DCM", "Findings"), leaves)
    for level in range(depth - 1):
        node = _container("CONTAINS", ("121070", "DCM", "Findings"), [
            _item("CONTAINS", "TEXT", ("121106", "DCM", "Comment"),
                  TextValue=f"Level {depth - 1 - level} reviewed by {reader}."),
            node,
        ])  # fmt: skip
    ds.ContentSequence = Sequence([*_observer(book), node])
    return _save(ds, path, overrides)


def _pdf(text: str) -> bytes:
    """A one-page PDF whose (deflated) content stream shows `text`."""
    import zlib

    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = zlib.compress(f"BT /F1 11 Tf 40 780 Td ({escaped}) Tj ET".encode("latin-1"))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def make_encapsulated_pdf(
    path: str | Path | None = None,
    *,
    seed: int = 0,
    canaries: bool = False,
    text: str | None = None,
    **overrides: Any,
) -> Dataset:
    """Return (and optionally write) an Encapsulated PDF instance.

    The PDF's one page says `text`; by default a report that names the
    patient (its family name and ID), deflated so that no byte scan of the
    file can see it.

    Examples
    --------
    >>> ds = make_encapsulated_pdf(text="No findings.")
    >>> ds.MIMETypeOfEncapsulatedDocument, ds.EncapsulatedDocument[:5]
    ('application/pdf', b'%PDF-')
    """
    book = CanaryBook(seed, enabled=canaries)
    ds = _document(book, seed, _PDF, ("18748-4", "LN", "Diagnostic Imaging Report"), "")
    for keyword in (
        "ValueType",
        "ConceptNameCodeSequence",
        "ContinuityOfContent",
        "ContentTemplateSequence",
        "CompletionFlag",
        "VerificationFlag",
        "PerformedProcedureCodeSequence",
        "ReferencedPerformedProcedureStepSequence",
    ):
        ds.pop(keyword, None)  # fmt: skip
    ds.Modality = "DOC"
    ds.ConversionType = "WSD"
    ds.ContentDate, ds.ContentTime, ds.AcquisitionDateTime = "20210304", "102000", "20210304102000"
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = "Report"
    ds.ConceptNameCodeSequence = Sequence([_code("18748-4", "LN", "Diagnostic Imaging Report")])
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    if text is None:
        family = str(ds.PatientName).split("^")[0]
        text = f"Report for {family}, patient ID {ds.PatientID}: no acute findings."
    data = _pdf(text)
    ds.EncapsulatedDocument = data + b"\0" * (len(data) % 2)
    ds.EncapsulatedDocumentLength = len(data)
    return _save(ds, path, overrides)
