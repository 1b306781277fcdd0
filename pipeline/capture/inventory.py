"""Camera inventory: which cameras to record, for which case, when, and with which credentials.

Credentials are referenced by environment-variable name only (`username_env`, `password_env`), so the
inventory file can be reviewed, versioned and attached to the custody record without leaking secrets.
A URL that embeds a password is rejected outright. The URL's scheme picks the camera source that reads it
(`pipeline/capture/sources/`: rtsp:// and rtsps:// today), and that source validates it.

    cameras:
      - id: cam1
        url: rtsp://10.0.0.5:554/stream1
        username_env: CAM1_USER
        password_env: CAM1_PASS
        case_ref: OP-EXAMPLE/2026-001
        exhibit_prefix: JD/CAM1
        segment_seconds: 60
        camera_clock: true          # measure its clock (RTCP sender reports) on a short second session
        windows:
          - cron: "0 22 * * *"     # 22:00 every day (UTC)
            duration: 8h
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import yaml
from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import UsageError

from .sources import source_for, validate_url

_DUR = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$")
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class InventoryError(UsageError):
    """The inventory file is unreadable or invalid; the message names the file, line, camera and field (exit 2)."""


class MissingCredential(InventoryError):
    """An environment variable named by the inventory is not set in this process."""


def _parse_duration(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DUR.match(value)) and any(m.groups()):
        h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        seconds = h * 3600 + mi * 60 + s
    else:
        raise ValueError(f"duration {value!r} not understood: use seconds or e.g. 8h, 90m, 1h30m, 45s")
    if seconds <= 0:
        raise ValueError(f"duration {value!r} must be positive")
    return seconds


class RecordingWindow(BaseModel):
    """Record for `duration` seconds starting at each time matched by `cron` (5-field, UTC)."""

    model_config = ConfigDict(extra="forbid")
    cron: str
    duration: float

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError(f"cron {v!r} must have 5 fields (minute hour day month weekday)")
        try:
            CronSim(v, datetime(2000, 1, 1, tzinfo=UTC))
        except CronSimError as exc:
            raise ValueError(f"cron {v!r} invalid: {exc}") from exc
        return v

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        return _parse_duration(v)

    def next_start(self, after: datetime) -> datetime:
        return next(CronSim(self.cron, after.astimezone(UTC)))


class Camera(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    url: str
    username_env: Annotated[str, Field(pattern=_ENV_NAME)] | None = None
    password_env: Annotated[str, Field(pattern=_ENV_NAME)] | None = None
    case_ref: Annotated[str, Field(min_length=1)]
    exhibit_prefix: Annotated[str, Field(min_length=1)]
    segment_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    stall_timeout: Annotated[float, Field(gt=0, le=600)] = 10.0
    # read the camera's clock from its RTCP sender reports on a short second RTSP session per connection
    # (rtcp.py); false for a camera that allows only one session
    camera_clock: bool = True
    windows: list[RecordingWindow] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return validate_url(v)  # the camera source registered for the scheme decides (sources/)

    @model_validator(mode="after")
    def _creds(self) -> Camera:
        if self.password_env and not self.username_env:
            raise ValueError("password_env given without username_env")
        return self

    def resolved_url(self, env: dict[str, str] | None = None) -> str:
        """URL with credentials filled in from the environment; never store or log the result."""
        env = dict(os.environ) if env is None else env
        if not self.username_env:
            return self.url
        values = {}
        for field in ("username_env", "password_env"):
            name = getattr(self, field)
            if name is None:
                continue
            if name not in env:
                raise MissingCredential(f"camera {self.id}: {field} names ${name}, which is not set; export it "
                                        "before recording")
            values[field] = env[name]
        return source_for(self.url).with_credentials(self.url, values["username_env"], values.get("password_env"))


class Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cameras: list[Camera]

    @model_validator(mode="after")
    def _unique(self) -> Inventory:
        seen: set[str] = set()
        for cam in self.cameras:
            if cam.id in seen:
                raise ValueError(f"camera id {cam.id!r} appears twice")
            seen.add(cam.id)
        return self

    def camera(self, camera_id: str) -> Camera:
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise InventoryError(f"no camera {camera_id!r} in inventory; have {', '.join(c.id for c in self.cameras)}")


def _node_line(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at a pydantic error location (the nearest existing ancestor's if the
    location names a missing field)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
        if child is None:
            return line
        node = child
        line = node.start_mark.line + 1
    return line


def _describe(exc: ValidationError, data: object, root: yaml.Node | None = None) -> str:
    msgs = []
    for err in exc.errors():
        loc = list(err["loc"])
        line = _node_line(root, tuple(loc))
        where = [f"line {line}"] if line else []
        if len(loc) >= 2 and loc[0] == "cameras" and isinstance(loc[1], int):
            cams = data.get("cameras") if isinstance(data, dict) else None
            cid = cams[loc[1]].get("id") if isinstance(cams, list) and isinstance(cams[loc[1]], dict) else None
            where.append(f"camera {cid!r}" if cid else f"camera #{loc[1] + 1}")
            loc = loc[2:]
        field = ".".join(str(x) for x in loc) or "(root)"
        msg = err["msg"].removeprefix("Value error, ")
        msgs.append(f"{': '.join(where) + ': ' if where else ''}field {field}: {msg}")
    return "; ".join(msgs)


def parse_inventory(data: object, source: str = "<inventory>", *, node: yaml.Node | None = None) -> Inventory:
    """Validate inventory data; `node` (the composed YAML) lets errors name the line at fault."""
    try:
        return Inventory.model_validate(data)
    except ValidationError as exc:
        raise InventoryError(f"{source}: {_describe(exc, data, node)}") from None


def load_inventory(path: Path) -> Inventory:
    """Load and validate a YAML inventory; errors name the file, the line, the camera and the bad field."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InventoryError(f"cannot read inventory {path}: {exc.strerror}") from exc
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InventoryError(f"{path}{at}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return parse_inventory(data, str(path), node=node)
