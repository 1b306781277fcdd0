"""Who did it: the actor named in every custody event.

Always a name someone chose: `--actor`, CUSTODY_ACTOR / `actor` in settings, or the signed-in API
token. Never the operating-system account silently ("root" tells a court nothing); a command run
without one fails saying how to set it (the CLI asks once on an interactive terminal).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import UsageError
from pipeline.settings import Settings
from pipeline.text import clean_human_text

HOW_TO_SET = ("name who is acting: pass --actor \"DC Jane Bloggs\" (before the command), set CUSTODY_ACTOR, "
              "or put \"actor\" in $CUSTODY_HOME/settings.json")


class NoActor(UsageError):
    """No named actor is configured."""


def validate_actor_name(name: str) -> str:
    return clean_human_text(name, "actor", 100, required=True)


@dataclass
class Actor:
    name: str
    role: str = "operator"

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role}

    @classmethod
    def default(cls, settings: Settings) -> Actor:
        """The configured actor; NoActor (exit 2) when none is, never the OS user."""
        if not settings.actor or not settings.actor.strip():
            raise NoActor(f"no actor configured: {HOW_TO_SET}")
        return cls(validate_actor_name(settings.actor))
