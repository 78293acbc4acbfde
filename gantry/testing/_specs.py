"""The identities behind synthetic DICOM: patients ▸ studies ▸ series ▸ instances.

Every value is drawn from a seeded :class:`random.Random`, so the same seed
gives the same people, dates and UIDs on every run and machine.  With canaries
enabled, every identifying text value is a canary token instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path

from gantry.testing._canaries import CanaryBook

_FAMILY = (
    "ABERNATHY", "BRENNAN", "CASTELLANO", "DUBOIS", "EKWUEME", "FITZGERALD", "GRUBER",
    "HALVORSEN", "IBARRA", "JANSSEN", "KOWALSKI", "LINDQVIST", "MORIARTY", "NAKAMURA",
    "OKONKWO", "PETROVA", "QUINTERO", "RASMUSSEN", "SZABO", "TANAKA", "UMBERTO",
    "VANCE", "WOJCIK", "XIMENES", "YAMADA", "ZIELINSKI",
)  # fmt: skip
_GIVEN_F = ("AGNES", "BEATRIX", "CLARA", "DELPHINE", "EDITH", "FRIEDA", "GRETA", "HILDA")
_GIVEN_M = ("ALBERT", "BORIS", "CORNELIUS", "DESMOND", "EGON", "FABIAN", "GUSTAV", "HORACE")
_STREETS = ("Elm Street", "Harbour Road", "Mill Lane", "Quarry Avenue", "Station Way")
_CITIES = ("Springfield", "Riverton", "Lakeside", "Fairview", "Oakdale")
_INSTITUTIONS = (
    ("St. Gantry General Hospital", "1 Infirmary Square, Riverton"),
    ("Lakeside Imaging Center", "400 Shore Drive, Lakeside"),
    ("Oakdale University Clinic", "22 College Road, Oakdale"),
)
_STATIONS = ("CTSCAN01", "MRI-3T-A", "USROOM2", "XRAY-ER", "PACS-SC")

# Manufacturer, model and software for each modality (not identifying).
DEVICES: dict[str, tuple[str, str, str]] = {
    "CT": ("GANTRY Medical Systems", "Helix 64", "HX-4.2.1"),
    "MR": ("GANTRY Medical Systems", "Magneto 3T", "MG-11.0"),
    "US": ("Sonoria", "Sonoria S8", "2.7.0"),
    "CR": ("RadiCorp", "CR-Reader 900", "9.1"),
    "DX": ("RadiCorp", "DX Flat 43", "5.0.3"),
    "SC": ("GANTRY Workstation", "Capture Suite", "1.0"),
}


def make_uid(seed: int, *key: object) -> str:
    """Return a deterministic ``2.25.<int>`` UID for ``(seed, *key)``.

    Examples
    --------
    >>> make_uid(0, "study", 1) == make_uid(0, "study", 1)
    True
    >>> make_uid(0, "study", 1).startswith("2.25.")
    True
    """
    text = ":".join(str(k) for k in (seed, *key))
    digest = hashlib.blake2b(f"gantry-uid:{text}".encode(), digest_size=16).digest()
    return f"2.25.{int.from_bytes(digest, 'big')}"


@dataclass(slots=True)
class InstanceSpec:
    """One instance: its UIDs, where it was written and what it references."""

    sop_instance_uid: str
    sop_class_uid: str
    number: int
    transfer_syntax: str
    frames: int = 1
    path: Path | None = None
    references: tuple[tuple[str, str], ...] = ()
    """``(ReferencedSOPClassUID, ReferencedSOPInstanceUID)`` pairs of other instances."""


@dataclass(slots=True)
class SeriesSpec:
    """One series: modality, device and staff, and its instances."""

    series_instance_uid: str
    frame_of_reference_uid: str
    modality: str
    number: int
    description: str
    performing_physician: str
    operator: str
    station_name: str
    device_serial_number: str
    comment: str
    private_note: str
    instances: list[InstanceSpec] = field(default_factory=list)


@dataclass(slots=True)
class StudySpec:
    """One study: UIDs, request data, the date it took place, and its series."""

    study_instance_uid: str
    study_id: str
    accession_number: str
    date: str
    time: str
    description: str
    referring_physician: str
    referring_physician_code: str
    requested_procedure_id: str
    scheduled_procedure_step_id: str
    requested_procedure_description: str
    accession_issuer: str
    institution_name: str
    institution_address: str
    department: str
    series: list[SeriesSpec] = field(default_factory=list)


@dataclass(slots=True)
class PatientSpec:
    """One synthetic patient with the identity values written into their files.

    ``dates`` lists every date (``YYYYMMDD``) that identifies this patient in
    their files: the birth date and each study's date.  They are unique across
    a corpus, so a leak test can grep for them like canaries.
    """

    patient_id: str
    name: str
    birth_date: str
    sex: str
    address: str
    telephone: str
    other_patient_ids: tuple[str, ...]
    issuer_of_patient_id: str
    history: str
    studies: list[StudySpec] = field(default_factory=list)

    @property
    def dates(self) -> tuple[str, ...]:
        """The birth date followed by each study's date."""
        return (self.birth_date, *(s.date for s in self.studies))

    def age_at(self, date: str) -> str:
        """Return the DICOM AS age (``"045Y"``) of the patient on ``date``."""
        born = dt.date(
            int(self.birth_date[:4]), int(self.birth_date[4:6]), int(self.birth_date[6:])
        )
        on = dt.date(int(date[:4]), int(date[4:6]), int(date[6:]))
        years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
        return f"{years:03d}Y"


class DatePool:
    """Draws dates that are distinct from every other date drawn from the pool."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def draw(self, rnd: random.Random, first_year: int, last_year: int) -> str:
        """Return an unused ``YYYYMMDD`` between the two years (inclusive)."""
        start = dt.date(first_year, 1, 1).toordinal()
        stop = dt.date(last_year, 12, 31).toordinal()
        while True:
            day = dt.date.fromordinal(rnd.randint(start, stop)).strftime("%Y%m%d")
            # avoid day/month look-alikes (e.g. 20121212) that collide with other content
            if day not in self.taken and len(set(day[4:])) > 2:
                self.taken.add(day)
                return day


def new_patient(rnd: random.Random, book: CanaryBook, dates: DatePool, index: int) -> PatientSpec:
    """Draw patient ``index`` (its studies are added by the caller)."""
    key = f"p{index}"
    sex = rnd.choice("FM")
    given = rnd.choice(_GIVEN_F if sex == "F" else _GIVEN_M)
    family = rnd.choice(_FAMILY)
    name = f"{book.value(key + '.family', family)}^{book.value(key + '.given', given)}"
    pid = f"{rnd.randint(10_000_000, 99_999_999)}"
    house = rnd.randint(1, 299)
    address = f"{house} {rnd.choice(_STREETS)}, {rnd.choice(_CITIES)}"
    phone = f"+1-555-{rnd.randint(100, 999)}-{rnd.randint(1000, 9999)}"
    other = f"MRN{rnd.randint(100_000, 999_999)}"
    other_b = f"LIC-{rnd.randint(10**7, 10**8 - 1)}"
    return PatientSpec(
        patient_id=book.value(key + ".PatientID", pid),
        name=name,
        birth_date=dates.draw(rnd, 1931, 1994),
        sex=sex,
        address=book.value(key + ".PatientAddress", address),
        telephone=book.value(key + ".PatientTelephoneNumbers", phone),
        other_patient_ids=(
            book.value(key + ".OtherPatientIDs", other),
            book.value(key + ".OtherPatientIDsSequence", other_b),
        ),
        issuer_of_patient_id=book.value(key + ".IssuerOfPatientID", "RIVERTON-MRN"),
        history=(
            f"Referred by family doctor; patient {name.split('^')[0]} reports chest pain. "
            + book.value(key + ".AdditionalPatientHistory", "")
        ).strip(),
    )


def new_study(
    rnd: random.Random,
    book: CanaryBook,
    dates: DatePool,
    seed: int,
    patient: PatientSpec,
    p_index: int,
    s_index: int,
) -> StudySpec:
    """Draw study ``s_index`` of patient ``p_index`` on a date no other study uses."""
    key = f"p{p_index}.s{s_index}"
    inst_name, inst_addr = rnd.choice(_INSTITUTIONS)
    ref_family = rnd.choice(_FAMILY)
    descr = rnd.choice(("CHEST W/O CONTRAST", "ABDOMEN PELVIS", "HEAD ROUTINE", "KNEE LEFT"))
    return StudySpec(
        study_instance_uid=make_uid(seed, key, "study"),
        study_id=book.value(key + ".StudyID", f"{rnd.randint(1000, 9999)}"),
        accession_number=book.value(key + ".AccessionNumber", f"A{rnd.randint(10**7, 10**8 - 1)}"),
        date=dates.draw(rnd, 2004, 2023),
        time=f"{rnd.randint(7, 18):02d}{rnd.randint(0, 59):02d}{rnd.randint(0, 59):02d}",
        description=book.value(key + ".StudyDescription", descr),
        referring_physician=(
            book.value(key + ".ReferringPhysicianName", ref_family) + "^"
            + rnd.choice(_GIVEN_F + _GIVEN_M) + "^^DR"
        ),  # fmt: skip
        referring_physician_code=book.value(key + ".ReferringPhysicianCode", f"NPI{rnd.randint(10**6, 10**7 - 1)}"),
        requested_procedure_id=book.value(key + ".RequestedProcedureID", f"RP{rnd.randint(10**5, 10**6 - 1)}"),
        scheduled_procedure_step_id=book.value(key + ".ScheduledProcedureStepID", f"SPS{rnd.randint(10**5, 10**6 - 1)}"),
        requested_procedure_description=book.value(key + ".RequestedProcedureDescription", descr) + f" for {patient.name.split('^')[0]}",
        accession_issuer=book.value(key + ".IssuerOfAccessionNumber", "RIVERTON-RIS"),
        institution_name=book.value(key + ".InstitutionName", inst_name),
        institution_address=book.value(key + ".InstitutionAddress", inst_addr),
        department=book.value(key + ".InstitutionalDepartmentName", "Radiology"),
    )  # fmt: skip


def new_series(
    rnd: random.Random,
    book: CanaryBook,
    seed: int,
    patient: PatientSpec,
    modality: str,
    key: str,
    number: int,
) -> SeriesSpec:
    """Draw a series of ``modality``; ``key`` makes its UIDs and canaries unique."""
    family = patient.name.split("^")[0]
    descr = {
        "CT": "AXIAL 5MM STD", "MR": "T2 TSE AX", "US": "LIVER CINE",
        "CR": "CHEST PA", "DX": "CHEST AP", "SC": "KEY IMAGES",
    }.get(modality, "SERIES")  # fmt: skip
    return SeriesSpec(
        series_instance_uid=make_uid(seed, key, "series"),
        frame_of_reference_uid=make_uid(seed, key, "for"),
        modality=modality,
        number=number,
        description=book.value(key + ".SeriesDescription", descr),
        performing_physician=book.value(key + ".PerformingPhysicianName", rnd.choice(_FAMILY))
        + "^" + rnd.choice(_GIVEN_F + _GIVEN_M),
        operator=book.value(key + ".OperatorsName", rnd.choice(_FAMILY)) + "^TECH",
        station_name=book.value(key + ".StationName", rnd.choice(_STATIONS)),
        device_serial_number=book.value(key + ".DeviceSerialNumber", f"SN{rnd.randint(10**6, 10**7 - 1)}"),
        comment=(
            f"Patient {family} tolerated the exam well. "
            + book.value(key + ".ImageComments", "")
        ).strip(),
        private_note=book.value(key + ".PrivateNote", f"tech note {rnd.randint(1, 99)}"),
    )  # fmt: skip
