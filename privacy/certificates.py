"""Keys and certificates for a TLS federation with SuperNode authentication (pure ``cryptography``).

One private certificate authority signs a server certificate for every endpoint that serves TLS:
the coordinator's SuperLink and each hospital's SuperNode runtime API (the ClientApp executor
connects to it). Each hospital also gets an EC key pair in OpenSSH format: Flower 1.42 signs every
SuperNode request with it (``flower-supernode --auth-supernode-private-key``) and the SuperLink
admits only public keys registered with ``flwr supernode register`` (any NIST curve; Flower's own
examples use P-384, so do we).

Files are written once with exclusive creates: private keys are 0600 from the first byte, and an
existing file is never overwritten, because re-issuing a node key silently de-registers a hospital.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CURVE = ec.SECP384R1
CA_NAME = "Polyclinic federation CA"
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
RESERVED = frozenset({"ca", "public", "superlink"})
_ROLE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# File names inside each folder; the same everywhere so that commands stay uniform.
CA_CERT, CA_KEY = "ca.pem", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"
AUTH_KEY, AUTH_PUB = "auth.key", "auth.pub"


@dataclass(frozen=True)
class Layout:
    """Where ``write_federation`` puts each file: one folder per role, so a container mounts only its own.

    ``ca/`` holds the CA key (keep it offline); ``public/`` only public material (the CA certificate
    and the hospitals' authentication keys to register), for the app executors and the registration
    step; ``superlink/`` the SuperLink's TLS key; ``<hospital>/`` the SuperNode's TLS and
    authentication keys. The code that a run ships to a hospital executes beside ``public/`` only.
    """

    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca"

    @property
    def public(self) -> Path:
        return self.root / "public"

    @property
    def superlink(self) -> Path:
        return self.root / "superlink"

    def hospital(self, name: str) -> Path:
        return self.root / name

    def registered_key(self, name: str) -> Path:
        """The hospital's public authentication key as the coordinator receives it."""
        return self.public / "supernodes" / f"{name}.pub"

    def files(self, hospitals: Sequence[str]) -> list[Path]:
        """Every file ``write_federation`` writes for these hospitals."""
        files = [self.ca / CA_KEY, self.ca / CA_CERT, self.public / CA_CERT]
        for folder in [self.superlink, *map(self.hospital, hospitals)]:
            files += [folder / CA_CERT, folder / SERVER_CERT, folder / SERVER_KEY]
        for name in hospitals:
            folder = self.hospital(name)
            files += [folder / AUTH_KEY, folder / AUTH_PUB, self.registered_key(name)]
        return files


def write_federation(out: Path, server_names: Sequence[str], hospitals: Mapping[str, Sequence[str]],
                     *, now: dt.datetime | None = None) -> Layout:
    """Issue every key and certificate of a federation under ``out`` (see ``Layout``).

    ``server_names`` are the SuperLink's host names and addresses; ``hospitals`` maps each hospital
    to the names its SuperNode runtime API is reached by. Nothing is written if any file exists.
    """
    for name in hospitals:
        if name in RESERVED or not _ROLE_NAME.match(name):
            raise ValueError(f"hospital name {name!r} cannot name a key folder: use lower-case letters, "
                             f"digits and '-', and none of {sorted(RESERVED)}")
    layout = Layout(out)
    if existing := [path for path in layout.files(list(hospitals)) if path.exists()]:
        raise FileExistsError(f"{existing[0]} already exists; keys are never overwritten (new node keys "
                              "de-register every hospital): choose a new folder or move this one away")
    authority = new_authority(now=now)
    write_private_key_pem(layout.ca / CA_KEY, authority.key)
    for folder in [layout.ca, layout.public]:
        write_certificate_pem(folder / CA_CERT, authority.certificate)
    for folder, names in [(layout.superlink, server_names),
                          *[(layout.hospital(h), n) for h, n in hospitals.items()]]:
        write_certificate_pem(folder / CA_CERT, authority.certificate)
        key, certificate = issue_server_certificate(authority, names, now=now)
        write_private_key_pem(folder / SERVER_KEY, key)
        write_certificate_pem(folder / SERVER_CERT, certificate)
    for name in hospitals:
        folder = layout.hospital(name)
        write_node_key_pair(folder / AUTH_KEY, folder / AUTH_PUB, new_node_key())
        write_new_file(layout.registered_key(name), (folder / AUTH_PUB).read_bytes(), PUBLIC_MODE)
    for folder in [layout.ca, layout.superlink, *map(layout.hospital, hospitals)]:
        os.chmod(folder, 0o700)  # private keys inside
    return layout


@dataclass(frozen=True)
class Authority:
    """The CA in memory: it signs server certificates; its key never leaves ``ca/``."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def new_authority(*, valid_days: int = 3650, now: dt.datetime | None = None) -> Authority:
    """A self-signed CA that may sign end-entity certificates only (path length 0)."""
    key = ec.generate_private_key(CURVE())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Polyclinic"),
                      x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    start = _now(now)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(minutes=5))
        .not_valid_after(start + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    return Authority(key, certificate)


def issue_server_certificate(authority: Authority, names: Sequence[str], *, valid_days: int = 825,
                             now: dt.datetime | None = None
                             ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A TLS server key and certificate valid for ``names`` (host names and IP addresses).

    Clients check the name they dialled against the subject alternative names, so every name a
    process uses to reach the server (``127.0.0.1``, ``localhost``, a compose service) must be here.
    """
    if not names:
        raise ValueError("a server certificate needs at least one host name or IP address")
    key = ec.generate_private_key(CURVE())
    start = _now(now)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(minutes=5))
        .not_valid_after(start + dt.timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
                       critical=False)
        .sign(authority.key, hashes.SHA384())
    )
    return key, certificate


def new_node_key() -> ec.EllipticCurvePrivateKey:
    """A SuperNode authentication key (EC on a NIST curve, as ``flwr supernode register`` demands)."""
    return ec.generate_private_key(CURVE())


def write_private_key_pem(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    """A PEM (PKCS#8) private key, for TLS servers; mode 0600."""
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    return write_new_file(path, data, PRIVATE_MODE)


def write_certificate_pem(path: Path, certificate: x509.Certificate) -> Path:
    return write_new_file(path, certificate.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE)


def write_node_key_pair(private_path: Path, public_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """The OpenSSH private key (0600) for ``flower-supernode`` and its public key for registration."""
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH)
    write_new_file(private_path, private, PRIVATE_MODE)
    write_new_file(public_path, public + b"\n", PUBLIC_MODE)


def write_new_file(path: Path, data: bytes, mode: int) -> Path:
    """Create ``path`` with ``mode`` (exclusive: an existing file raises ``FileExistsError``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise FileExistsError(f"{path} already exists; keys are never overwritten "
                              "(move the folder away to issue new ones)") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)  # the umask may have narrowed a public file's mode
    return path


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _now(now: dt.datetime | None) -> dt.datetime:
    return now if now is not None else dt.datetime.now(dt.UTC)
