"""Entry point: builds the Typer app and maps errors to honest exit codes.

0 success (possibly with warnings: committed work followed by a local failure), 1 verification
failed / evidence problem, 2 usage error, 3 infrastructure unavailable — the S3 store (whatever
exception type escaped the storage seam) or the local disk (full, read-only, file-size limit) —
with what to start or free.

Tracebacks are never shown unless CUSTODY_DEBUG=1, and then with credentials masked by the one
redaction rule (`access.redact`), as every error message is.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from typing import Annotated

import typer
from typer._click.exceptions import ClickException  # typer vendors its own click
from typer.exceptions import Abort, Exit

from pipeline.cli import (
    audit,
    bundle,
    cameras,
    cases,
    clock,
    extract,
    intake,
    keys,
    recover,
    review,
    serve,
    stack,
    tlog,
    users,
    verify,
)
from pipeline.cli.output import err
from pipeline.errors import CustodyError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="custody: evidence ingestion with a tamper-evident chain of custody.")


@app.callback()
def _global(actor: Annotated[str | None, typer.Option(
        "--actor", help="Who is acting (recorded in every custody event); default: CUSTODY_ACTOR or "
                        "`actor` in $CUSTODY_HOME/settings.json.")] = None) -> None:
    if actor is not None:
        from pipeline.custody.actor import validate_actor_name

        os.environ["CUSTODY_ACTOR"] = validate_actor_name(actor)


app.add_typer(stack.app, name="stack")
app.add_typer(cameras.app, name="cameras")
cases.register(app)
clock.register(cases.exhibit_app)
intake.register(app)
verify.register(app)
bundle.register(app)
extract.register(app)
review.register(app)
recover.register(app)
users.register(app)
audit.register(app)
serve.register(app)
tlog.register(app)
keys.register(app)

#: local resource failures: the machine, not the evidence, is the problem
_LOCAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EMFILE, errno.ENFILE, errno.ENOMEM}


def _is_store_failure(exc: BaseException) -> bool:
    """An S3 transport failure that escaped the storage seam (urllib3 / http.client / socket errors)."""
    mod = type(exc).__module__ or ""
    return mod.startswith(("urllib3", "http.client", "minio")) or isinstance(exc, ConnectionError)


def _fail(msg: str, code: int) -> None:
    from pipeline.access.redact import redact_text

    err.print(f"[bold red]error:[/] {redact_text(msg)}", markup=True, highlight=False)
    sys.exit(code)


def main() -> None:
    from pipeline.access.redact import configure_logging, redact_text

    configure_logging()
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
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last resort: a message, not a traceback
        from pipeline.settings import debug_enabled

        if debug_enabled():
            sys.stderr.write(redact_text("".join(traceback.format_exception(exc))))
        if _is_store_failure(exc):
            _fail(f"the S3 store broke off ({type(exc).__name__}); start it (`custody stack up`) or check "
                  "CUSTODY_S3_ENDPOINT, then rerun: work already recorded is kept and recognised", 3)
        if isinstance(exc, OSError) and exc.errno in _LOCAL_ERRNOS:
            where = f" at {exc.filename}" if exc.filename else ""
            _fail(f"local disk problem{where}: {exc.strerror}; free space in CUSTODY_HOME (or the output folder) "
                  "and rerun", 3)
        _fail(f"internal error: {type(exc).__name__}: {exc} (set CUSTODY_DEBUG=1 for details)", 1)
    sys.exit(rv if isinstance(rv, int) else 0)
