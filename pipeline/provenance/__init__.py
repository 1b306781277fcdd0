"""Content credentials (C2PA) for what investigators share: stills, contact sheets and clips that name their
source original and custody record inside the file, signed by the project's (or the force's) certificate.

    creds = load_credentials(settings)               # local C2PA CA under the home, or the force's PKI
    info = Embedder(creds).embed(png, out, source_ref, ACTIONS["still"], params, pixel_sha256=...)
    read(out)["source"]                              # exhibit id, event seq, source SHA-256... from the file alone
    validate(out, creds.trust_anchors_pem).ok        # signature, content binding and trusted signer

Modules: credentials (CA and signer), c2pa_manifest (embed/read/validate), c2pa_prehashed (PNGs signed from
the hash their encoder computed), measure (cost per still).
"""

from pipeline.provenance.c2pa_manifest import (
    ACTIONS,
    Embedder,
    ManifestInfo,
    ProvenanceError,
    SourceRef,
    ValidationResult,
    embed,
    read,
    validate,
)
from pipeline.provenance.credentials import Credentials, CredentialsError, ensure_local_ca, load_credentials

__all__ = ["ACTIONS", "Credentials", "CredentialsError", "Embedder", "ManifestInfo", "ProvenanceError", "SourceRef",
           "ValidationResult", "embed", "ensure_local_ca", "load_credentials", "read", "validate"]
