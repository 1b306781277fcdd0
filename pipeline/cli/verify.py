"""`custody verify`: the store (re-hash everything, check every chain) or a bundle, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import JsonOpt, evidence
from pipeline.cli.output import emit_json, err, say, say_styled
from pipeline.errors import UsageError

TrustedKeyOpt = Annotated[list[Path] | None, typer.Option(
    "--trusted-key", help="Bundle: trust exactly this public key (PEM) the sender gave you out of band (repeatable).")]
KeyIdOpt = Annotated[list[str] | None, typer.Option(
    "--key-id", help="Bundle: trust the key in the bundle with this id, confirmed with the sender (repeatable).")]
TsaRootOpt = Annotated[list[Path] | None, typer.Option(
    "--tsa-root", help="Bundle: a time-stamp authority's root certificate (PEM), obtained from the TSA.")]


def verify(target: Annotated[Path | None, typer.Argument(help="A bundle .zip to verify offline.")] = None,
           case: Annotated[str | None, typer.Option("--case")] = None,
           exhibit: Annotated[str | None, typer.Option("--exhibit")] = None,
           trusted_key: TrustedKeyOpt = None, key_id: KeyIdOpt = None, tsa_root: TsaRootOpt = None,
           json_out: JsonOpt = False) -> None:
    """Re-hash every object and check every link, signature, log entry and time-stamp; PASS or what failed."""
    if target is not None:
        raise typer.Exit(verify_bundle_cli(target, json_out, trusted_key or None, key_id or None, tsa_root or None))
    if not case and not exhibit:
        raise UsageError("give --case C [--exhibit E], --exhibit E, or a bundle file")
    from pipeline.custody.caseverify import verify_case

    ev = evidence()
    if case:
        c = ev.locate_case(case) or ev.catalog.get_case(case)
        refs = [exhibit] if exhibit else None
    else:
        c, e1 = ev.find_exhibit(exhibit, None)
        refs = [e1.ref]
    with err.status("verifying") as status:
        rep = verify_case(ev, c, refs, progress=lambda s: status.update(f"re-hashing {s[:80]}"))
    if json_out:
        emit_json(rep.as_dict())
    else:
        _say_case(rep)
        print("PASS" if rep.ok else "FAIL")
    if not rep.ok:
        raise typer.Exit(1)


def _say_case(rep) -> None:  # type: ignore[no-untyped-def]
    t = rep.context.as_dict()
    c = rep.case.ref
    say(f"case log of {c}: {rep.entries} entries, {len(rep.members)} exhibit(s), {rep.bundles} bundle(s)")
    say(f"transparency log: tree of {t['tree_size']} leaves signed {t['signed']}, root {t['root']}"
        + ("" if t["timestamps_checked"] else " (time-stamps NOT checked)"))
    for f in rep.findings + rep.context.all_findings():
        say_styled("[red]  - {}[/]", f)
    for r in rep.exhibits:
        if r.ok:
            say_styled("[green]PASS[/] {} {}: {} events ({} in the transparency log), {} objects, {} bytes re-hashed",
                       c, r.exhibit_ref, r.events, r.logged, r.objects, r.bytes_hashed)
        else:
            say_styled("[red]FAIL[/] {} {}:", c, r.exhibit_ref)
            for f in r.findings:
                say(f"  - {f}")


def verify_bundle(target: Annotated[Path, typer.Argument(help="Bundle .zip (or unzipped bag directory).")],
                  trusted_key: TrustedKeyOpt = None, key_id: KeyIdOpt = None, tsa_root: TsaRootOpt = None,
                  json_out: JsonOpt = False) -> None:
    """Verify a bundle offline (same as `custody verify FILE`)."""
    raise typer.Exit(verify_bundle_cli(target, json_out, trusted_key or None, key_id or None, tsa_root or None))


def verify_bundle_cli(target: Path, json_out: bool, trusted_keys: list[Path] | None = None,
                      key_ids: list[str] | None = None, tsa_roots: list[Path] | None = None) -> int:
    """Print PASS or every failing file; 0 on PASS, 1 on failure (an untrusted signer is a failure)."""
    from pipeline.export.verify import verify_bundle

    if not Path(target).exists():
        raise UsageError(f"{target}: no such file")
    with err.status(f"verifying {Path(target).name}"):
        rep = verify_bundle(Path(target), trusted_keys, key_ids=key_ids, tsa_roots=tsa_roots)
    if json_out:
        emit_json(rep.as_dict())
    else:
        if rep.statement_key:
            say_styled("signed statement by key [bold]{}[/]: confirm this id with the sender by phone or letter; a "
                       "key's id is `openssl pkey -pubin -in KEY.pem -outform DER | tail -c 32 | sha256sum`",
                       rep.statement_key)
        for k in rep.keys:
            say_styled("signing key {}: [bold]{}[/]", k["source"], k["key_id"])
        for x in rep.exhibits:
            say(f"exhibit {x['exhibit']}: {x['events']} events, head {x['head']}, "
                f"{x['objects_checked']} files matched to custody records")
        if rep.treehead:
            say(f"transparency log: every chain head is in the tree head of {rep.treehead['size']} leaves signed "
                f"{rep.treehead['signed']}" + (f", time-stamped {rep.timestamp}" if rep.timestamp else ""))
        for n in rep.notes:
            say(f"note: {n}")
        say(f"{rep.files_checked} files, {rep.bytes_hashed} bytes hashed")
        for f in rep.findings:
            say_styled("[red]  - {}[/]", f)
        print("PASS" if rep.ok else "FAIL")
    return 0 if rep.ok else 1


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
    app.command("verify-bundle")(verify_bundle)
