"""Client for a remote custody API (`custody upload --api URL --token T`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hashing.stream import Digests
from pipeline.errors import IntegrityError, UsageError

Progress = Callable[[int], None]


class ApiClient:
    """Uploads through the HTTP API when the field laptop has no S3 credentials.

    The body is streamed and hashed in the same pass; the server hashes what it
    stores, and the two SHA-256 values must agree or the upload is reported as
    an IntegrityError (the server's record then says what it actually holds).
    """

    def __init__(self, base_url: str, token: str) -> None:
        import httpx

        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {token}"},
                                 timeout=httpx.Timeout(60, read=600))

    def _check(self, r: Any) -> Any:
        from pipeline.errors import InfrastructureError, NotFoundError

        if r.status_code < 400:
            return r.json()
        try:
            detail = r.json().get("detail")
        except ValueError:
            detail = r.text[:300]
        if r.status_code == 404:
            raise NotFoundError(f"API: {detail}")
        if r.status_code == 422:
            raise IntegrityError(f"API: {detail}")
        if r.status_code >= 500:
            raise InfrastructureError(f"API error {r.status_code}: {detail}")
        raise UsageError(f"API refused ({r.status_code}): {detail}")

    def exhibit(self, case_ref: str, exhibit_ref: str, officer: str, description: str = "") -> tuple[str, str]:
        """(case_id, exhibit_id), registering the exhibit if it is new."""
        cases = self._check(self.http.get("/api/cases"))
        case = next((c for c in cases if c["case"] == case_ref), None)
        if case is None:
            raise UsageError(f"case {case_ref!r} is not visible to this token (not created, or not assigned)")
        ex = self._check(self.http.post(f"/api/cases/{case['case_id']}/exhibits",
                                        json={"ref": exhibit_ref, "officer": officer, "description": description}))
        return case["case_id"], ex["exhibit_id"]

    def upload(self, case_id: str, exhibit_id: str, path: Path, parameters: dict[str, Any],
               progress: Progress | None = None, name: str | None = None) -> dict[str, Any]:
        """Send one file; `name` is its name on the card when `path` is a pinned `/proc/self/fd` path."""
        digests = Digests(("sha256",))

        def body() -> Iterator[bytes]:
            with open(path, "rb") as f:
                while chunk := f.read(1024 * 1024):
                    digests.update(chunk)
                    if progress:
                        progress(len(chunk))
                    yield chunk

        params = {"name": name or path.name, **{k: v for k, v in parameters.items() if k in ("seized_at", "location",
                                                                                       "device")}}
        r = self.http.post(f"/api/cases/{case_id}/exhibits/{exhibit_id}/uploads", params=params, content=body(),
                           headers={"Content-Type": "application/octet-stream"})
        result = self._check(r)
        if result["sha256"] != digests.sha256 or int(result["size"]) != digests.size:
            raise IntegrityError(f"{path}: server stored sha256 {result['sha256']} ({result['size']} bytes) but "
                                 f"{digests.sha256} ({digests.size} bytes) was sent; see the custody record")
        return result
