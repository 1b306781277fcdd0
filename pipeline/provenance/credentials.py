"""Who signs content credentials: the project's own C2PA CA on a workstation, the force's certificate in production.

Local: created once under `<home>/keys/c2pa/` — a self-signed root (`ca.pem`, key `ca.key`) and an end-entity
signing certificate it issues (`signer.pem`: the chain, end-entity first; key `signer.key`). ECDSA P-256 /
ES256, keys mode 0600 in a 0700 directory. The end-entity certificate carries what C2PA validators require of a
claim signer: not a CA, keyUsage digitalSignature only, extendedKeyUsage emailProtection (the EKU c2pa-rs's
default trust configuration accepts) plus documentSigning (RFC 9336), subject/authority key identifiers.
A recipient trusts stills signed here by installing `ca.pem` as a trust anchor.

Production: settings `c2pa_cert` (PEM chain, end-entity first), `c2pa_key` (PEM private key) and
`c2pa_trust_anchors` (the force's root(s), for validation) name the force's PKI instead; nothing is created.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from pipeline.errors import UsageError
from pipeline.secrets import write_private

if TYPE_CHECKING:
    from pipeline.settings import Settings

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # id-kp-documentSigning, RFC 9336
ORG = "custody content credentials"


class CredentialsError(UsageError):
    """The configured signing certificate or key cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Credentials:
    """A signing chain and key for C2PA manifests, and the anchors a validator should trust."""

    chain_pem: bytes = field(repr=False)  # end-entity certificate first, then intermediates (and root)
    key_pem: bytes = field(repr=False)
    alg: str  # c2pa name: es256 | es384 | ed25519
    trust_anchors_pem: bytes = field(repr=False)
    origin: str  # 'local-ca' | 'settings'

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificates(self.chain_pem)[0]

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the end-entity certificate (DER): what a custody record names the signer by."""
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    def describe(self) -> dict[str, Any]:
        cert = self.certificate
        return {"alg": self.alg, "origin": self.origin, "subject": cert.subject.rfc4514_string(),
                "issuer": cert.issuer.rfc4514_string(), "serial": str(cert.serial_number),
                "certificate_sha256": self.fingerprint,
                "trust_anchors_sha256": hashlib.sha256(self.trust_anchors_pem).hexdigest()}

    def signer(self) -> Any:
        """A c2pa.Signer (reusable across manifests)."""
        import c2pa

        return c2pa.Signer.from_info(c2pa.C2paSignerInfo(self.alg.encode(), self.chain_pem, self.key_pem, None))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def make_ca(key: ec.EllipticCurvePrivateKey, *, years: int = 20, label: str | None = None) -> x509.Certificate:
    """A self-signed root that may only issue end-entity certificates (pathLen 0)."""
    now = dt.datetime.now(dt.UTC)
    name = _name(label or f"custody C2PA root ({socket.gethostname()[:40]})")
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(sign=False, ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))


def issue_signer(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, key: ec.EllipticCurvePrivateKey, *,
                 years: int = 5, label: str | None = None) -> x509.Certificate:
    """An end-entity claim-signing certificate with the extensions C2PA validators check."""
    now = dt.datetime.now(dt.UTC)
    subject = _name(label or f"custody claim signer ({socket.gethostname()[:40]})")
    return (x509.CertificateBuilder().subject_name(subject)
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=365 * years))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(sign=True, ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))


@dataclass(frozen=True)
class LocalFiles:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def chain(self) -> Path:
        return self.directory / "signer.pem"

    @property
    def key(self) -> Path:
        return self.directory / "signer.key"

    def complete(self) -> bool:
        return all(p.exists() for p in (self.ca_cert, self.ca_key, self.chain, self.key))


def ensure_local_ca(directory: Path) -> Credentials:
    """Create the local C2PA CA and signer once (under a lock: two starters must not write mismatched sets)."""
    files = LocalFiles(Path(directory).resolve())
    if not files.complete():
        files.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(files.directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not files.complete():
                _create(files)
    return Credentials(files.chain.read_bytes(), files.key.read_bytes(), "es256", files.ca_cert.read_bytes(),
                       "local-ca")


def _create(files: LocalFiles) -> None:
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = make_ca(ca_key)
    ee = issue_signer(ca_key, ca, key)
    pem = serialization.Encoding.PEM
    write_private(files.ca_key, _key_pem(ca_key))
    write_private(files.key, _key_pem(key))
    _write(files.ca_cert, ca.public_bytes(pem))
    _write(files.chain, ee.public_bytes(pem) + ca.public_bytes(pem))  # chain last: complete() means usable


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CredentialsError(f"cannot read the C2PA {what} {path}: {exc.strerror}") from None


def load_credentials(settings: Settings) -> Credentials:
    """The force's certificate when settings name one (all three files), else the local CA under the home."""
    named = [settings.c2pa_cert, settings.c2pa_key, settings.c2pa_trust_anchors]
    if not any(named):
        return ensure_local_ca(settings.keys_dir / "c2pa")
    if not all(named):
        raise CredentialsError("set all of c2pa_cert, c2pa_key and c2pa_trust_anchors (CUSTODY_C2PA_*), or none "
                               "to use the local C2PA CA")
    chain = _read(settings.c2pa_cert, "certificate chain")  # type: ignore[arg-type]
    key_pem = _read(settings.c2pa_key, "private key")  # type: ignore[arg-type]
    anchors = _read(settings.c2pa_trust_anchors, "trust anchors")  # type: ignore[arg-type]
    return Credentials(chain, key_pem, _check_pair(chain, key_pem, settings.c2pa_cert), anchors,  # type: ignore[arg-type]
                       "settings")


def _check_pair(chain: bytes, key_pem: bytes, where: Path) -> str:
    """The key must belong to the first certificate; return the c2pa algorithm name it implies."""
    try:
        cert = x509.load_pem_x509_certificates(chain)[0]
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CredentialsError(f"C2PA certificate or key unreadable ({where}): {exc}") from None
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, pub) != \
            cert.public_key().public_bytes(serialization.Encoding.DER, pub):
        raise CredentialsError(f"the C2PA private key does not belong to the first certificate in {where}")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in ("secp256r1", "secp384r1"):
        return "es256" if key.curve.name == "secp256r1" else "es384"
    raise CredentialsError(f"C2PA signing needs an ECDSA P-256/P-384 or Ed25519 key ({where})")
