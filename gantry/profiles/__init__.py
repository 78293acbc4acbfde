"""PS3.15 Annex E privacy profiles.

The Basic Application Level Confidentiality Profile and its options are
generated from the standard's Table E.1-1 into ``profiles/*.yaml``
(``scripts/gen_profiles.py``); :func:`load_profile` resolves a profile plus
options into one action per attribute.  See ``docs/profiles.md`` for the
resolution rule and the composition order.

Examples
--------
>>> from gantry.profiles import load_profile, ProfileOption
>>> p = load_profile("research")
>>> ProfileOption.RETAIN_PATIENT_CHARACTERISTICS in p.options
True
>>> str(p.action_for(0x00101010))  # PatientAge
'K'
"""

from gantry.profiles._codes import CID7050, Action, ProfileOption, resolve_code
from gantry.profiles._patterns import PRIVATE_PATTERN
from gantry.profiles._profile import Profile, load_profile
from gantry.profiles._spec import available_profiles

__all__ = [
    "CID7050",
    "PRIVATE_PATTERN",
    "Action",
    "Profile",
    "ProfileOption",
    "available_profiles",
    "load_profile",
    "resolve_code",
]
