"""The local time-stamp authority's keys and certificates, and the `openssl ts` configuration that signs with them.

Created once per directory: a self-signed CA (`ca.pem`, key `ca.key`) and a TSA certificate it issues
(`tsa.pem`, key `tsa.key`) with the critical extendedKeyUsage id-kp-timeStamping that RFC 3161 §2.3 requires,
so tokens verify with `openssl ts -verify ... -CAfile ca.pem -untrusted tsa.pem` like those of a real TSA.
Keys are ECDSA P-256, mode 0600. `openssl.cnf` names every file relative to the directory (openssl runs
there), so no path is ever interpolated into the config text or a command line.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipeline.secrets import write_private

# A UUID-derived OID (ITU-T X.667 arc 2.25): unique without registration, and plainly not a real TSA's policy.
LOCAL_POLICY = "2.25.171077163913425374384426407396335612245"

CONFIG = f"""\
# openssl ts -reply configuration of the custody local TSA (generated; paths are relative to this directory)
[ tsa ]
default_tsa = custody_tsa

[ custody_tsa ]
serial = ./serial
crypto_device = builtin
signer_cert = ./tsa.pem
signer_key = ./tsa.key
signer_digest = sha256
default_policy = {LOCAL_POLICY}
other_policies = {LOCAL_POLICY}
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 6
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


@dataclass(frozen=True)
class AuthorityFiles:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def tsa_cert(self) -> Path:
        return self.directory / "tsa.pem"

    @property
    def tsa_key(self) -> Path:
        return self.directory / "tsa.key"

    @property
    def config(self) -> Path:
        return self.directory / "openssl.cnf"

    @property
    def serial(self) -> Path:
        return self.directory / "serial"

    def complete(self) -> bool:
        return all(p.exists() for p in (self.ca_cert, self.tsa_cert, self.tsa_key, self.config, self.serial))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "custody local time-stamp authority"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def issue(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, tsa_key: ec.EllipticCurvePrivateKey, *,
          eku_critical: bool = True, years: int = 10) -> x509.Certificate:
    """A TSA certificate: digitalSignature only, EKU timeStamping (critical unless a test asks otherwise)."""
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder()
            .subject_name(_name(f"custody local TSA ({socket.gethostname()[:40]})"))
            .issuer_name(ca_cert.subject)
            .public_key(tsa_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=eku_critical)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(tsa_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))


def self_signed_ca(ca_key: ec.EllipticCurvePrivateKey, *, years: int = 20) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = _name(f"custody local TSA root ({socket.gethostname()[:40]})")
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))


def ensure_authority(directory: Path) -> AuthorityFiles:
    """Create the CA, TSA certificate, keys (0600) and openssl config once; later calls reuse them."""
    files = AuthorityFiles(Path(directory).resolve())
    if files.complete():
        return files
    files.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(files.directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two starters at once must not write two mismatched key sets
        if not files.complete():
            _create(files)
    return files


def _create(files: AuthorityFiles) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    ca = self_signed_ca(ca_key)
    tsa = issue(ca_key, ca, tsa_key)
    write_private(files.directory / "ca.key", _pem_key(ca_key))
    write_private(files.tsa_key, _pem_key(tsa_key))
    _write(files.ca_cert, ca.public_bytes(serialization.Encoding.PEM))
    _write(files.tsa_cert, tsa.public_bytes(serialization.Encoding.PEM))
    _write(files.serial, b"01\n")
    _write(files.config, CONFIG.encode())


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
