"""Entry point: builds the Typer app and maps errors to honest exit codes.

0 success (possibly with warnings: committed work followed by a local failure), 1 verification
failed / evidence problem, 2 usage error, 3 infrastructure unavailable — the S3 store (whatever
exception type escaped the storage seam) or the local disk (full, read-only, file-size limit) —
with what to start or free.

Tracebacks are never shown unless CUSTODY_DEBUG=1, and then with credentials masked by the one
redaction rule (`access.redact`), as every error message is.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Annotated, NoReturn

import typer
from click.exceptions import ClickException  # typer < 0.25 is built on click (pyproject says why)
from typer import Abort, Exit

from pipeline.cli.output import say, say_styled
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


#: top-level command -> the CLI modules that register it (in order). Only the command being run is
#: built: Typer builds every command's parameters up front, ~45 ms for all of them, and each module pulls
#: in its own imports. `test_the_lazy_command_table_names_every_command` keeps this in step with the modules.
COMMANDS: dict[str, tuple[str, ...]] = {
    "stack": ("stack",), "cameras": ("cameras",), "case": ("cases",), "exhibit": ("cases", "clock"),
    "hold": ("cases",), "ingest": ("intake",), "upload": ("intake",), "verify": ("verify",),
    "verify-bundle": ("verify",), "bundle": ("bundle",), "extract": ("extract",), "review": ("review",),
    "recover": ("recover",), "user": ("users",), "audit": ("audit",), "serve": ("serve",), "log": ("tlog",),
    "key": ("keys",),
}
_ORDER = ("stack", "cameras", "cases", "clock", "intake", "verify", "bundle", "extract", "review", "recover",
          "users", "audit", "serve", "tlog", "keys")
_registered: set[str] = set()


def register_module(name: str, into: typer.Typer) -> None:
    """Add the commands of CLI module `name` to `into` (`clock` adds its own to `exhibit`)."""
    import importlib

    mod = importlib.import_module(f"pipeline.cli.{name}")
    if name == "clock":
        from pipeline.cli.cases import exhibit_app

        mod.register(exhibit_app)
    elif name in ("stack", "cameras"):
        into.add_typer(mod.app, name=name)
    else:
        mod.register(into)


def _register(name: str) -> None:
    if name not in _registered:
        _registered.add(name)
        register_module(name, app)


def build_app(argv: list[str] | None = None) -> typer.Typer:
    """Register the command `argv` names (all of them when it names none, e.g. `--help`)."""
    wanted = _command_named(argv) if argv is not None else None
    for name in COMMANDS[wanted] if wanted else _ORDER:
        _register(name)
    return app


def _command_named(argv: list[str]) -> str | None:
    """The top-level command in argv, past the global `--actor X`; None if there is none we know."""
    from pipeline.cli.argv import command_named

    word = command_named(argv)
    return word if word in COMMANDS else None


#: local resource failures: the machine, not the evidence, is the problem
_LOCAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EMFILE, errno.ENFILE, errno.ENOMEM}


def _is_store_failure(exc: BaseException) -> bool:
    """An S3 transport failure that escaped the storage seam (urllib3 / http.client / socket errors)."""
    mod = type(exc).__module__ or ""
    return mod.startswith(("urllib3", "http.client", "minio")) or isinstance(exc, ConnectionError)


def _fail(msg: str, code: int) -> None:
    from pipeline.access.redact import redact_text

    say_styled("[bold red]error:[/] {}", redact_text(msg))
    sys.exit(code)


def main() -> None:
    from pipeline.access.redact import configure_logging, redact_text

    configure_logging()
    try:
        rv = build_app(sys.argv[1:])(standalone_mode=False)
    except Exit as exc:
        sys.exit(exc.exit_code)
    except Abort:
        say("aborted")
        sys.exit(130)
    except ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CustodyError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        say("interrupted")
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


#: seconds a command runs before the cyclic garbage collector comes back (see `pause_collector_at_start`)
STARTUP_GC_PAUSE_S = 10.0


def pause_collector_at_start(seconds: float = STARTUP_GC_PAUSE_S) -> threading.Timer:
    """Keep CPython's cyclic collector off while the command starts, then freeze what start-up made and
    turn it back on.

    A command's start-up imports ~700 modules and reads its case and chain: hundreds of thousands of
    objects that live until exit, and almost no cyclic garbage (42,000 small objects for all of
    `custody extract`, 6,400 for uploading 600 MB). The collector walks them again each time enough new
    ones arrive: 0.2-0.3 s of `custody extract`'s ~6 s, on the one thread everything else waits for
    (measured with `gc.callbacks`). After `seconds`, `gc.freeze()` sets the start-up objects aside for
    good and collection resumes, so servers and long jobs are collected as before.
    """
    import gc

    def resume() -> None:
        gc.freeze()
        gc.enable()

    gc.disable()
    timer = threading.Timer(seconds, resume)
    timer.daemon = True  # never holds the process open; `run` waits only for non-daemon threads
    timer.start()
    return timer


def run() -> None:
    """The `custody` console script: `main`, then a quick exit once the command's work is done.

    Tearing down the interpreter (~1,000 modules) costs 30-40 ms and achieves nothing for a finished
    command, so after what the interpreter would do first (atexit handlers, among them the transparency-log
    flush, logging and temporary-directory clean-up; stdout and stderr flushed) the process leaves with
    `os._exit`. While any other non-daemon thread is alive it exits the ordinary way, waiting for it.
    """
    pause_collector_at_start()
    code = _exit_code_of(main)
    if any(not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    leave(code)


def run_in_child(report: Callable[[int], None], detach: Callable[[], None]) -> NoReturn:
    """`run` inside a command server's child: the same command and exit, the code also `report`ed to the
    launcher before leaving (the child must never return into the server's loop). Work left for after the
    command (`pipeline.cli.finishing`) runs after the report, once `detach` has let the launcher go."""
    pause_collector_at_start()
    code = _exit_code_of(main)
    # what interpreter shutdown does before atexit: stop thread pools (their `_register_atexit` hooks) and
    # wait for the other non-daemon threads
    threading._shutdown()  # type: ignore[attr-defined]
    leave(code, report, detach)


def _exit_code_of(fn: Callable[[], None]) -> object:
    try:
        fn()
    except SystemExit as exc:
        return exc.code
    except KeyboardInterrupt:
        return 130
    return 0


def leave(code: object, report: Callable[[int], None] | None = None,
          detach: Callable[[], None] | None = None) -> NoReturn:
    """atexit handlers, flushed streams, then `os._exit` with `code` (text is printed, exit 1); with `report`
    (a served child) the code is reported first and the `after_command` work done after it."""
    import atexit

    atexit._run_exitfuncs()
    if code is not None and not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        code = code or 1
    if report is not None:
        from pipeline.cli.finishing import take_later

        later = take_later()
        if later and not _detached(detach):  # the launcher cannot go first: do the work now, as on our own
            _run_later(later)
            later = []
        report(int(code or 0))
        _run_later(later)
    os._exit(code or 0)


def _detached(detach: Callable[[], None] | None) -> bool:
    if detach is None:
        return False
    try:
        detach()
    except OSError:
        return False
    return True


def _run_later(work: list[Callable[[], None]]) -> None:
    for fn in work:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - as atexit would: say so, the exit code is given
            sys.stderr.write(f"custody: after the command: {type(exc).__name__}: {exc}\n")
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
