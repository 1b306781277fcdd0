"""Content credentials (C2PA) on what leaves the system: embed, read and validate a signed manifest.

A still, contact sheet or clip that is pasted into a report or sent to a press office carries, inside the
file, a manifest signed by the project's (or the force's) certificate that names:
  * the source original as a `parentOf` ingredient (`instance_id` = `urn:sha256:<hex>`, the custody
    reference in its description);
  * `custody.source`: case and exhibit ids and references, bucket/key/version, SHA-256, size and the seq of
    the custody event that recorded the source — enough to find it, and its chain, from the file alone;
  * the actions (`c2pa.opened` the source, then e.g. `c2pa.transcoded` for a still) and `custody.process`:
    procedure, parameters, tool versions, the pixel hash and an optional run id the procedure's custody
    event also records.
Manifests are made offline: no thumbnail (a lossy copy has no place in evidence), no remote manifest, no
OCSP or network fetches when validating. Signing is not deterministic (ECDSA, fresh manifest ids), so the
file hash of a credentialed still changes every run; its pixel hash does not, and is what reproduces.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import CustodyError, UsageError
from pipeline.provenance.c2pa_prehashed import PNG_SIGNATURE, PrehashedPath, png_chunks
from pipeline.provenance.credentials import Credentials

SOURCE_LABEL, PROCESS_LABEL = "custody.source", "custody.process"
INGREDIENT_ID = "custody-source"
# Standard C2PA 2.x action names (spec §18.15); anything else must be namespaced `custody.`.
STANDARD_ACTIONS = frozenset({
    "c2pa.color_adjustments", "c2pa.converted", "c2pa.created", "c2pa.cropped", "c2pa.deleted", "c2pa.drawing",
    "c2pa.dubbed", "c2pa.edited", "c2pa.edited.metadata", "c2pa.enhanced", "c2pa.filtered", "c2pa.opened",
    "c2pa.orientation", "c2pa.placed", "c2pa.published", "c2pa.redacted", "c2pa.removed", "c2pa.repackaged",
    "c2pa.resized", "c2pa.transcoded", "c2pa.translated", "c2pa.trimmed", "c2pa.unknown", "c2pa.watermarked"})
# What each procedure did to the source, in the closest standard terms (after `c2pa.opened`, added by embed).
ACTIONS: dict[str, tuple[str, ...]] = {
    "still": ("c2pa.transcoded",),  # one decoded picture written losslessly as PNG
    "contact_sheet": ("c2pa.transcoded", "c2pa.resized"),  # frames of the source, scaled and tiled
    "clip": ("c2pa.trimmed", "c2pa.transcoded"),  # a re-encoded excerpt
    "clip_copy": ("c2pa.trimmed", "c2pa.repackaged"),  # an excerpt cut without re-encoding
    "recovered": ("c2pa.repackaged",),  # samples re-indexed into a new MP4, bytes unchanged
    "redacted": ("c2pa.redacted",),
}
IN_MEMORY_MAX = 64 << 20
_OFFLINE = {"remote_manifest_fetch": False, "ocsp_fetch": False}
_LABEL = re.compile(rb"urn:c2pa:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class ProvenanceError(CustodyError):
    """A manifest could not be made (unsupported format, unusable certificate): nothing was written."""


@dataclass(frozen=True)
class SourceRef:
    """The source original as its custody record names it."""

    case_id: str
    case: str
    exhibit_id: str
    exhibit: str
    bucket: str
    key: str
    version_id: str | None
    sha256: str
    size: int
    event_seq: int  # the custody event that recorded the source
    original_name: str | None = None
    content_type: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SourceRef:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ManifestInfo:
    """What embedding did: the file custody stores (its hash) and what the manifest cost."""

    label: str
    format: str
    bytes_in: int
    bytes_out: int
    manifest_bytes: int
    sha256: str  # of the output file, manifest included: what custody records as the object's hash ("": not asked)
    seconds: float
    signer: dict[str, Any] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)

    @property
    def added_bytes(self) -> int:
        return self.bytes_out - self.bytes_in

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "added_bytes": self.added_bytes}


@dataclass
class ValidationResult:
    ok: bool  # signature, hashes and bindings verify AND the signer chains to a given trust anchor
    state: str  # c2pa's: Trusted | Valid (intact, signer not trusted) | Invalid | absent
    failures: list[str]  # c2pa status codes, e.g. assertion.dataHash.mismatch, signingCredential.untrusted
    source: SourceRef | None = None
    label: str | None = None


def sniff_format(head: bytes) -> str:
    """The MIME type c2pa needs, from the bytes (never the name)."""
    if head.startswith(PNG_SIGNATURE):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"
    raise ProvenanceError("content credentials are embedded in PNG, JPEG and MP4/MOV files only")


def _actions(actions: Sequence[str | dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for a in actions:
        item = {"action": a} if isinstance(a, str) else dict(a)
        name = str(item.get("action", ""))
        if name not in STANDARD_ACTIONS and not name.startswith("custody."):
            raise UsageError(f"action {name!r} is neither a standard C2PA action nor namespaced 'custody.'")
        if name in ("c2pa.placed", "c2pa.removed"):
            raise UsageError(f"{name} needs componentOf ingredients; these manifests have one parent ingredient")
        if name != "c2pa.opened":
            out.append(item)
    return [{"action": "c2pa.opened", "parameters": {"ingredientIds": [INGREDIENT_ID]}}, *out]


def manifest_definition(source: SourceRef, actions: Sequence[str | dict[str, Any]], params: dict[str, Any], *,
                        title: str, fmt: str, pixel_sha256: str | None = None, run_id: str | None = None,
                        procedure: str | None = None, tools: dict[str, str] | None = None) -> dict[str, Any]:
    """The manifest as c2pa's Builder takes it (pure: tests and reviewers can read what will be signed)."""
    from pipeline import __version__

    where = f"{source.bucket}/{source.key}" + (f" version {source.version_id}" if source.version_id else "")
    process = {"procedure": procedure, "parameters": params, "tools": tools or {}, "pixel_sha256": pixel_sha256,
               "run_id": run_id}
    return {
        "claim_generator_info": [{"name": "custody", "version": __version__}],
        "title": title, "format": fmt,
        "ingredients": [{"title": source.original_name or source.key.rsplit("/", 1)[-1],
                         "format": source.content_type or "application/octet-stream", "relationship": "parentOf",
                         "instance_id": f"urn:sha256:{source.sha256}", "label": INGREDIENT_ID,
                         "description": f"custody original {where}, exhibit {source.exhibit} ({source.exhibit_id}), "
                                        f"case {source.case} ({source.case_id}), recorded in event #"
                                        f"{source.event_seq}"}],
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": _actions(actions)}},
                       {"label": SOURCE_LABEL, "data": source.as_dict()},
                       {"label": PROCESS_LABEL, "data": {k: v for k, v in process.items() if v is not None}}],
    }


class Embedder:
    """One signer and c2pa context for many files (a still per frame: make it once per extraction).

    c2pa validates what it has just signed (`verify_after_sign`) on the first file only: that proves the
    signer, its certificate chain and the manifest template, which are the same for every file of the
    run, and costs ~1.6 of ~8.6 CPU-ms a 2 MB still. Every file's credential is validated
    again wherever it is checked (`validate`, c2patool on a bundle's stills)."""

    def __init__(self, credentials: Credentials) -> None:
        import c2pa

        self.credentials = credentials
        self._signer = credentials.signer()
        def context(check: bool) -> Any:
            return c2pa.Context(c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}},
                                                         "verify": {**_OFFLINE, "verify_after_sign": check}}))

        self._checked_context, self._context = context(True), context(False)
        self._lock = threading.Lock()
        self._self_checked = False  # set once a file signed with verify_after_sign has passed
        self._prehashed = PrehashedPath(self._validated)  # PNGs whose hash is known
        self._describe = {**credentials.describe(), "verify_after_sign": "first file of each run"}

    def describe(self) -> dict[str, Any]:
        """The signer and how files are signed, for a procedure's custody event."""
        n = self._prehashed.files
        if not n:
            return dict(self._describe)
        return {**self._describe, "png_binding": f"{n} PNG(s) signed from the encoder's SHA-256 (c2pa.hash.data "
                                                 "excluding the manifest chunk after IHDR, the layout c2pa's own "
                                                 "signing writes); the run's first such file validated in full"}

    def embed(self, path_in: Path, path_out: Path, source_ref: SourceRef | dict[str, Any],
              actions: Sequence[str | dict[str, Any]], params: dict[str, Any], **kw: Any) -> ManifestInfo:
        """Write `path_in` with a signed manifest to the new file `path_out` (the input is only read).

        `kw`: title, pixel_sha256, run_id, procedure, tools (see `manifest_definition`). Files up to
        IN_MEMORY_MAX are signed in memory (c2pa reads Python file objects in small calls: ~2x slower).
        """
        path_in, path_out = Path(path_in), Path(path_out)
        if path_out.exists() and path_out.resolve() == path_in.resolve():
            raise UsageError("content credentials are written to a new file, never over the input")
        kw.setdefault("title", path_out.name)
        if path_in.stat().st_size <= IN_MEMORY_MAX:
            data, info = self.embed_bytes(path_in.read_bytes(), source_ref, actions, params, **kw)
            tmp = path_out.with_name(f".{path_out.name}.part")
            tmp.write_bytes(data)
            tmp.replace(path_out)
            return info
        t0 = time.perf_counter()
        with path_in.open("rb") as src:
            fmt = sniff_format(src.read(16))
            src.seek(0)
            definition = self._definition(source_ref, actions, params, fmt, kw)
            try:
                with path_out.open("w+b") as dst:
                    manifest = self._sign(definition, fmt, src, dst)
            except ProvenanceError:
                path_out.unlink(missing_ok=True)
                raise
        return self._info(definition, manifest, fmt, path_in.stat().st_size, path_out.stat().st_size,
                          _sha256(path_out), t0)

    def embed_bytes(self, data: bytes, source_ref: SourceRef | dict[str, Any],
                    actions: Sequence[str | dict[str, Any]], params: dict[str, Any], *, hash_output: bool = True,
                    data_sha256: str | None = None, **kw: Any) -> tuple[bytes, ManifestInfo]:
        """The same on bytes in memory (a still just encoded): returns the credentialed file's bytes.

        `hash_output=False` leaves `ManifestInfo.sha256` empty, for a caller that stores the bytes and so
        hashes them in the pass that sends them. `data_sha256`: the SHA-256 of `data`, when its maker
        computed it: a PNG is then signed from it without c2pa reading the file (c2pa_prehashed)."""
        t0 = time.perf_counter()
        fmt = sniff_format(bytes(data[:16]))
        definition = self._definition(source_ref, actions, params, fmt, {"title": "still.png", **kw})
        fast = self._sign_prehashed(definition, data, data_sha256) if fmt == "image/png" and data_sha256 else None
        if fast is None:
            out = io.BytesIO()
            manifest = self._sign(definition, fmt, io.BytesIO(data), out)
            signed = out.getvalue()
        else:
            signed, manifest = fast
        return signed, self._info(definition, manifest, fmt, len(data), len(signed),
                                  hashlib.sha256(signed).hexdigest() if hash_output else "", t0)

    def _validated(self, signed: bytes, unsigned_sha256: str) -> str | None:
        """None if `signed` validates in full and is the PNG of `unsigned_sha256` plus its manifest."""
        result = validate(signed, self.credentials.trust_anchors_pem)
        if not result.ok:
            return ", ".join(result.failures) or result.state
        return None if unsigned_png_sha256(signed) == unsigned_sha256 else "the PNG around the manifest differs"

    def _sign_prehashed(self, definition: dict[str, Any], data: bytes, sha256: str) -> tuple[bytes, bytes] | None:
        """(signed file, manifest store) from the known hash, or None to sign the ordinary way (always before
        the run's first ordinary file has passed c2pa's own check)."""
        import c2pa

        with self._lock:
            checked = self._self_checked
        if not checked:
            return None
        try:
            return self._prehashed.sign(lambda: c2pa.Builder(definition, context=self._context), self._signer, data,
                                        sha256)
        except (c2pa.C2paError, RuntimeError) as exc:
            raise ProvenanceError(f"could not sign a C2PA manifest ({definition['title']}): {exc}") from None

    @staticmethod
    def _definition(source_ref: SourceRef | dict[str, Any], actions: Sequence[str | dict[str, Any]],
                    params: dict[str, Any], fmt: str, kw: dict[str, Any]) -> dict[str, Any]:
        source = source_ref if isinstance(source_ref, SourceRef) else SourceRef.from_dict(source_ref)
        return manifest_definition(source, actions, params, fmt=fmt, **kw)

    def _sign(self, definition: dict[str, Any], fmt: str, src: Any, dst: Any) -> bytes:
        import c2pa

        with self._lock:
            check = not self._self_checked  # until one passes, every file is checked (threads sign at once)
        try:
            manifest = c2pa.Builder(definition, context=self._checked_context if check else self._context).sign(
                self._signer, fmt, src, dst)
        except c2pa.C2paError as exc:
            raise ProvenanceError(f"could not sign a C2PA manifest ({definition['title']}): {exc}") from None
        if check:
            with self._lock:
                self._self_checked = True
        return manifest

    def _info(self, definition: dict[str, Any], manifest: bytes, fmt: str, size_in: int, size_out: int, sha: str,
              t0: float) -> ManifestInfo:
        found = _LABEL.search(manifest)
        return ManifestInfo(found.group().decode() if found else "", fmt, size_in, size_out, len(manifest), sha,
                            round(time.perf_counter() - t0, 6), self._describe,
                            [a["action"] for a in definition["assertions"][0]["data"]["actions"]])


def embed(path_in: Path, path_out: Path, source_ref: SourceRef | dict[str, Any],
          actions: Sequence[str | dict[str, Any]], params: dict[str, Any], *, credentials: Credentials | None = None,
          **kw: Any) -> ManifestInfo:
    """One file: `Embedder(credentials).embed(...)`; credentials default to the settings' (local CA or force)."""
    if credentials is None:
        from pipeline.provenance.credentials import load_credentials
        from pipeline.settings import load_settings

        credentials = load_credentials(load_settings())
    return Embedder(credentials).embed(path_in, path_out, source_ref, actions, params, **kw)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _data(target: Path | bytes) -> tuple[str, Any]:
    if isinstance(target, bytes | bytearray | memoryview):
        data = bytes(target)
        return sniff_format(data[:16]), io.BytesIO(data)
    f = Path(target).open("rb")
    fmt = sniff_format(f.read(16))
    f.seek(0)
    return fmt, f


def _inspect(target: Path | bytes, settings: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(validation state, validation results, active manifest); ProvenanceError when there is no manifest."""
    import c2pa

    fmt, stream = _data(target)
    try:
        with c2pa.Context(c2pa.Settings.from_dict(settings)) as ctx, c2pa.Reader(fmt, stream, context=ctx) as r:
            return (r.get_validation_state() or "Invalid", r.get_validation_results() or {},
                    r.get_active_manifest() or {})
    except c2pa.C2paError as exc:
        raise ProvenanceError(f"no readable C2PA manifest: {exc}") from None
    finally:
        stream.close()


def _assertion(manifest: dict[str, Any], label: str) -> dict[str, Any] | None:
    return next((a.get("data") for a in manifest.get("assertions", []) if a.get("label") == label), None)


def read(target: Path | bytes) -> dict[str, Any]:
    """The active manifest of a file (path or its bytes alone), with the custody facts pulled out.

    `source` is the `custody.source` assertion (exhibit, event seq, source SHA-256...); `process` what was done.
    Reading is not validating: call `validate` before relying on any of it.
    """
    state, _results, manifest = _inspect(target, {"verify": _OFFLINE})
    return {"label": manifest.get("label"), "title": manifest.get("title"), "manifest": manifest,
            "source": _assertion(manifest, SOURCE_LABEL), "process": _assertion(manifest, PROCESS_LABEL),
            "ingredients": manifest.get("ingredients", []),
            "actions": [a.get("action") for a in (_assertion(manifest, "c2pa.actions.v2") or {}).get("actions", [])],
            "signature": manifest.get("signature_info"), "validation_state": state}


def unsigned_png_sha256(data: bytes) -> str:
    """SHA-256 of a credentialed PNG without its C2PA chunk (`caBX`): the PNG exactly as it was before
    embedding (c2pa only inserts that chunk), so a re-extraction's deterministic PNG hash can be checked
    against a stored, signed still."""
    if not data.startswith(PNG_SIGNATURE):
        raise ProvenanceError("not a PNG")
    view = memoryview(data)  # slices of a view: no copy of each chunk
    h = hashlib.sha256(view[:8])
    for kind, pos, size in png_chunks(view):
        if kind != b"caBX":
            h.update(view[pos:pos + size])
    return h.hexdigest()


def _anchors(trust_anchors: bytes | str | Path) -> str:
    if isinstance(trust_anchors, Path):
        return trust_anchors.read_text()
    return trust_anchors.decode() if isinstance(trust_anchors, bytes) else trust_anchors


def validate(target: Path | bytes, trust_anchors: bytes | str | Path) -> ValidationResult:
    """Check signature, assertion hashes and the hard binding to the content, and that the signer chains to
    one of `trust_anchors` (PEM). `ok` only when all hold: an intact manifest from an unknown signer is not ok."""
    settings = {"verify": {**_OFFLINE, "verify_trust": True}, "trust": {"trust_anchors": _anchors(trust_anchors)}}
    try:
        state, results, manifest = _inspect(target, settings)
    except ProvenanceError as exc:
        return ValidationResult(False, "absent", [str(exc)])
    failures = [f.get("code", "") for f in (results.get("activeManifest") or {}).get("failure", [])]
    failures += [f.get("code", "") for d in results.get("ingredientDeltas", [])
                 for f in (d.get("validationDeltas") or {}).get("failure", [])]
    src = _assertion(manifest, SOURCE_LABEL)
    return ValidationResult(state == "Trusted" and not failures, state, failures,
                            SourceRef.from_dict(src) if src else None, manifest.get("label"))

