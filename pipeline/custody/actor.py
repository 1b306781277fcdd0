"""Who did it: the actor named in every custody event."""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from pipeline.settings import Settings


@dataclass
class Actor:
    name: str
    role: str = "operator"

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role}

    @classmethod
    def default(cls, settings: Settings) -> Actor:
        return cls(settings.actor or getpass.getuser())
