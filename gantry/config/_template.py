"""The commented default configuration written by ``write_default_config``.

Loading it gives exactly ``Config()`` (a test checks); examples of the keys
whose default is empty are in comments.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_CONFIG_YAML"]

DEFAULT_CONFIG_YAML: Final = """\
# Gantry configuration, version 2.  Every key is optional; the values below are
# the defaults.  Reference: docs/config.md.  Tags are written "gggg,eeee" (hex)
# and must be quoted, otherwise YAML may read them as numbers.

# Version of this file's format; Gantry reads version 2.
version: 2

# Privacy profile: which PS3.15 Annex E rules decide what happens to each
# attribute.  A built-in name (basic | comprehensive | research) or the path of
# your own profile YAML (relative to this file), which may `extends:` a built-in.
privacy_profile: basic

# Profile options, applied in this order after the profile's own options; where
# two touch the same attribute the later one wins.  Names:
#   retain-longitudinal-full-dates      keep dates as they are
#   retain-longitudinal-modified-dates  shift dates per patient (intervals kept)
#   retain-patient-characteristics      keep sex, age, size, weight, ...
#   retain-device-identity              keep device serial numbers, station names
#   retain-institution-identity         keep institution names and addresses
#   retain-uids                         keep original UIDs (no remapping)
#   retain-safe-private                 keep private tags listed in safe_private_tags
#   clean-descriptors                   clean free-text descriptions instead of removing
#   clean-structured-content            clean SR content instead of removing
#   clean-graphics                      clean curves, overlays, annotations
options:
  - retain-longitudinal-modified-dates

# Date shifting (retain-longitudinal-modified-dates): each patient gets one
# offset, drawn from this range of days (both ends included) by a keyed hash of
# the patient, so every date of that patient moves by the same amount.
# Integers, min_days <= max_days.
date_jitter:
  min_days: -365
  max_days: -1

# true: private (odd-group) elements are removed, except those listed under
# safe_private_tags when the retain-safe-private option is on.
# false: every private element is kept as it is (not recommended).
remove_private_tags: true

# Private elements known to hold no identifying information, per private
# creator.  Only used with the retain-safe-private option.  Elements are
# "gggg,xxee": xx stands for the block byte, which differs between files.
safe_private_tags: []
#  - creator: "SIEMENS CSA HEADER"
#    elements: ["0029,xx08", "0029,xx09"]

# Per-tag rules that override the profile, keyed by tag.  `action` is one of
# REMOVE, EMPTY, REPLACE (needs `value`), KEEP, HASH, SHIFT (dates), DUMMY,
# CLEAN, REMAP (UIDs).  `name`, if given, must be the tag's DICOM keyword (a
# typo check).  REPLACE values may use {id} and {hash} as the pseudonym does.
phi_tags: {}
#  "0010,0010": {action: REPLACE, name: PatientName, value: "ANON_{id}"}
#  "0008,1030": {action: KEEP, name: StudyDescription}

# Tags kept whatever the profile says (an easier way to write KEEP rules).
keep: []
#  - "0008,103E"    # SeriesDescription

# Patient pseudonyms (PatientID, and PatientName when patient_name is
# pseudonym).  template: text with {id} and/or {hash}.  method: what {id} is:
# counter = a stable per-patient number (patients ordered by keyed hash),
# zero-padded to `width` digits; hash = the keyed hash.  {hash} is always the
# keyed hash, `hash_length` hex characters.  At most 64 characters in all.
pseudonym:
  template: "ANON_{id}"
  method: counter
  width: 6
  hash_length: 16

# What PatientName becomes: pseudonym (the pseudonym above), empty, or remove.
patient_name: pseudonym

# Root of the new UIDs: "2.25" (UUID-derived, needs no registration) or your
# organisation's root, at most 40 characters.  Quote it.
uid_root: "2.25"

# HIPAA Safe Harbor: ages above aggregate_over become one value (89 -> "090Y").
# null disables it.
age:
  aggregate_over: 89

# Known devices that burn text into the pixels, and where.  `match` picks the
# instances (all given fields must match; text compares case-insensitively,
# mode: equals (default) or contains).  Each zone is
# [row_start, row_end, col_start, col_end] in pixels, ends exclusive; `fill` is
# the pixel value written into the zones.
machines: []
#  - name: "Acme US"
#    match: {manufacturer: "Acme", model: "Sono 5", rows: 480, columns: 640}
#    redaction_zones:
#      - [0, 40, 0, 640]
#    fill: 0
#  - name: "Acme US, one unit"
#    match: {serial_number: "SN-0001"}
#    redaction_zones: [[0, 50, 0, 320]]

# Images flagged as carrying burned-in text (BurnedInAnnotation, audit rules):
# with exclude_without_zone true, those with no matching machine zone are not
# exported and are reported instead (fail closed).
# An image whose OCR scan (`gantry scan`, every frame) found no text is cleared;
# text it found is redacted: ocr_redact all (every box) or phi (only text that
# matches the patient's identity or PHI patterns), each box grown by ocr_padding px.
burned_in:
  exclude_without_zone: true
  ocr_redact: all
  ocr_padding: 4

# Reversible anonymization (docs/vault.md): when true, every exported file carries
# its original attributes encrypted under the session's vault key, in the standard's
# Encrypted Attributes Sequence (0400,0500). Needs a loaded key
# (session.enable_reversible_anonymization / session.load_key).
encrypted_attributes: false

# Several files with one SOP Instance UID (copies, or a broken source): decided
# when the plan is built. first: the first by file path is exported, the others
# are excluded and reported; skip: all of them are excluded; suffix: all are
# exported, the later ones as <uid>_2.dcm, <uid>_3.dcm, ...
duplicates: first

# Text Values of SR content items under clean-structured-content (docs/anonymize.md):
# clean = words naming someone and PHI patterns become [REDACTED]; remove = the whole
# text becomes [REDACTED] (the item stays, so the report stays valid).
sr_text: clean

# SR content items removed whole (with everything below them) under
# clean-structured-content: value types (PNAME, TEXT, ...) or concept name codes
# (121008 or DCM:121008). Items whose date cannot be shifted are removed anyway,
# and so are by-reference items pointing into a removed one.
sr_drop: []

# Overlay planes (60xx,3000) are always removed from the header. burn: draw them
# into the pixels first (monochrome, single-frame overlays), then read the written
# image by OCR (pip install 'gantry[ocr]') and fail the instance if identifying
# text shows; remove: drop them only.
overlays: remove

# Known false alarms of output verification, allowed on purpose. A verification
# failure (export, `gantry preview`, the compliance report) names the source
# attribute and a keyed hash of the value, never the value; list both to let that
# one value through, e.g. {attribute: ProtocolName, value_hash: 0123456789abcdef}.
# Every export records the list in `runs`.
acknowledged: []

# Defacing of head CT/MR series (docs/deface.md, pip install 'gantry[deface]'):
# anonymize fits a cut plane under the brain of each listed series and the export
# blanks everything on the face side of it. An instance of a listed series that
# cannot be defaced (no geometry, uneven slices, no head found) is not exported.
# margin: the distance in mm the cut keeps from the brain.
deface:
  series: []
  margin: 4.0
"""
