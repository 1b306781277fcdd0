"""Entry point: builds the Typer app and maps errors to exit codes.

Tracebacks are never shown (they could carry secrets); set CUSTODY_DEBUG=1
to see one when diagnosing a bug.
"""

from __future__ import annotations

import sys

import typer
from typer._click.exceptions import ClickException  # typer vendors its own click
from typer.exceptions import Abort, Exit

from pipeline.cli import bundle, cameras, cases, clock, extract, intake, keys, serve, stack, tlog, users, verify
from pipeline.cli.output import err
from pipeline.errors import CustodyError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="custody: evidence ingestion with a tamper-evident chain of custody.")
app.add_typer(stack.app, name="stack")
app.add_typer(cameras.app, name="cameras")
cases.register(app)
clock.register(cases.exhibit_app)
intake.register(app)
verify.register(app)
bundle.register(app)
extract.register(app)
users.register(app)
serve.register(app)
tlog.register(app)
keys.register(app)


def main() -> None:
    try:
        rv = app(standalone_mode=False)
    except Exit as exc:
        sys.exit(exc.exit_code)
    except Abort:
        err.print("aborted")
        sys.exit(130)
    except ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CustodyError as exc:
        err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last resort: a message, not a traceback
        from pipeline.settings import debug_enabled

        if debug_enabled():
            raise
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc} (set CUSTODY_DEBUG=1 for details)")
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
