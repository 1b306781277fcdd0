"""The `custody` command line. `run`, the console script, is `launcher.run`: standard library only, so a
command handed to the warm command server pays for no imports (the app itself is `pipeline.cli.main`)."""

from pipeline.cli.launcher import run

__all__ = ["run"]
