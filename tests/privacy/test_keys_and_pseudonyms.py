import os
import stat
from multiprocessing import Pool

import pytest

from privacy.keys import UntrustedKeyError, load_or_create_secret
from privacy.pseudonym import Pseudonymiser


def test_secret_is_created_once_with_private_modes(tmp_path):
    first = load_or_create_secret(tmp_path, "pseudonym")
    second = load_or_create_secret(tmp_path, "pseudonym")
    assert first == second and len(first) == 32
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys" / "pseudonym.key").stat().st_mode) == 0o600


def _create(folder):
    return load_or_create_secret(folder, "pseudonym")


def test_concurrent_first_use_agrees_on_one_secret(tmp_path):
    with Pool(4) as pool:
        secrets = pool.map(_create, [tmp_path] * 8)
    assert len(set(secrets)) == 1


def test_loose_permissions_are_refused_with_the_fix(tmp_path):
    load_or_create_secret(tmp_path, "pseudonym")
    key = tmp_path / "keys" / "pseudonym.key"
    os.chmod(key, 0o644)
    with pytest.raises(UntrustedKeyError, match="chmod 600"):
        load_or_create_secret(tmp_path, "pseudonym")


def test_truncated_key_is_refused(tmp_path):
    load_or_create_secret(tmp_path, "pseudonym")
    key = tmp_path / "keys" / "pseudonym.key"
    key.write_bytes(b"short")
    with pytest.raises(UntrustedKeyError, match="restore it from backup"):
        load_or_create_secret(tmp_path, "pseudonym")


def test_pseudonyms_are_stable_keyed_and_domain_separated():
    a, b = Pseudonymiser(b"a" * 32), Pseudonymiser(b"b" * 32)
    assert a.patient("MRN-1") == a.patient(" MRN-1 ")
    assert a.patient("MRN-1") != b.patient("MRN-1")
    assert a.patient("MRN-1") != a.patient("MRN-2")
    assert "MRN" not in a.patient("MRN-1") and a.patient("MRN-1").startswith("p-")
    assert a.reference("MRN-1") not in a.patient("MRN-1")


def test_remapped_uids_are_valid_dicom_uids():
    uid = Pseudonymiser(b"k" * 32).uid("1.2.840.113619.2.55.3.604688119.969.1268071029.320")
    assert uid.startswith("2.25.") and len(uid) <= 64
    assert all(part.isdigit() and (part == "0" or not part.startswith("0")) for part in uid.split("."))


def test_short_secrets_are_rejected():
    with pytest.raises(ValueError):
        Pseudonymiser(b"short")
