import argparse
import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_ssh_private_key
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from flwr.cli.supernode.register import try_load_public_key

from polyclinic import keys_cli
from privacy.certificates import (
    AUTH_KEY,
    AUTH_PUB,
    CA_CERT,
    SERVER_CERT,
    SERVER_KEY,
    Layout,
    write_federation,
)

HOSPITALS = {"hospital-a": ["hospital-a", "localhost", "127.0.0.1"], "hospital-b": ["hospital-b"]}
SERVER_NAMES = ["superlink", "localhost", "127.0.0.1"]


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return write_federation(tmp_path_factory.mktemp("pki"), SERVER_NAMES, HOSPITALS)


def _verify(folder, name, roots_folder):
    store = Store([x509.load_pem_x509_certificate((roots_folder / CA_CERT).read_bytes())])
    try:
        subject = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        subject = x509.DNSName(name)
    leaf = x509.load_pem_x509_certificate((folder / SERVER_CERT).read_bytes())
    return PolicyBuilder().store(store).build_server_verifier(subject).verify(leaf, [])


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_superlink_certificate_chains_to_the_ca_for_each_name(layout, name):
    chain = _verify(layout.superlink, name, layout.public)
    assert chain[-1].subject == chain[-1].issuer  # ends at the self-signed CA


def test_hospital_certificates_cover_their_own_names_only(layout):
    _verify(layout.hospital("hospital-a"), "hospital-a", layout.public)
    _verify(layout.hospital("hospital-a"), "127.0.0.1", layout.public)
    with pytest.raises(VerificationError):
        _verify(layout.hospital("hospital-b"), "hospital-a", layout.public)
    with pytest.raises(VerificationError):
        _verify(layout.superlink, "hospital-a", layout.public)


def test_a_certificate_from_another_authority_is_not_trusted(layout, tmp_path):
    other = write_federation(tmp_path / "other", SERVER_NAMES, {})
    with pytest.raises(VerificationError):
        _verify(layout.superlink, "superlink", other.public)


def test_server_key_matches_its_certificate(layout):
    for folder in (layout.superlink, layout.hospital("hospital-a")):
        key = load_pem_private_key((folder / SERVER_KEY).read_bytes(), None)
        cert = x509.load_pem_x509_certificate((folder / SERVER_CERT).read_bytes())
        assert key.public_key().public_numbers() == cert.public_key().public_numbers()


def test_private_keys_are_0600_in_0700_folders_and_public_is_only_public(layout):
    private = [p for p in layout.root.rglob("*") if p.is_file() and p.suffix == ".key"]
    assert len(private) == 1 + 1 + 2 * len(HOSPITALS)  # CA, SuperLink, TLS + auth per hospital
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, path.parent
    assert not [p for p in layout.public.rglob("*.key")]
    assert sorted(p.name for p in (layout.public / "supernodes").iterdir()) == ["hospital-a.pub",
                                                                             "hospital-b.pub"]


def test_node_keys_are_what_flower_loads(layout):
    folder = layout.hospital("hospital-a")
    private = load_ssh_private_key((folder / AUTH_KEY).read_bytes(), None)  # as flower-supernode does
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    registered = try_load_public_key(layout.registered_key("hospital-a"))  # as `flwr supernode register`
    own = try_load_public_key(folder / AUTH_PUB)
    assert registered == own
    assert try_load_public_key(layout.registered_key("hospital-b")) != own


def test_existing_keys_are_never_overwritten(layout):
    before = {p: p.read_bytes() for p in layout.root.rglob("*") if p.is_file()}
    with pytest.raises(FileExistsError, match="never overwritten"):
        write_federation(layout.root, SERVER_NAMES, HOSPITALS)
    assert {p: p.read_bytes() for p in layout.root.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("name", ["public", "Hospital A", "../x", ""])
def test_hospital_names_that_cannot_be_folders_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="cannot name a key folder"):
        write_federation(tmp_path, SERVER_NAMES, {name: ["x"]})
    assert not list(tmp_path.iterdir())


def _cli(argv):
    parser = argparse.ArgumentParser()
    keys_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return keys_cli.run(parser.parse_args(argv))


def test_keys_init_writes_once_and_keeps_a_complete_set(tmp_path):
    out = tmp_path / "pki"
    assert _cli(["keys", "init", str(out), "--hospitals", "h1,h2"]) == 0
    layout = Layout(out)
    assert all(p.is_file() for p in layout.files(["h1", "h2"]))
    _verify(layout.hospital("h2"), "h2", layout.public)
    _verify(layout.superlink, "superlink", layout.public)
    key = (layout.hospital("h1") / AUTH_KEY).read_bytes()
    assert _cli(["keys", "init", str(out), "--hospitals", "h1,h2", "--keep-existing"]) == 0
    assert (layout.hospital("h1") / AUTH_KEY).read_bytes() == key
    with pytest.raises(FileExistsError):
        _cli(["keys", "init", str(out), "--hospitals", "h1,h2"])
    with pytest.raises(FileExistsError):  # an incomplete set is not "kept": a new hospital needs care
        _cli(["keys", "init", str(out), "--hospitals", "h1,h2,h3", "--keep-existing"])
