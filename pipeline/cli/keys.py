"""`custody key show|rotate`: this home's signing key, and replacing it with a signed key-change record."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.common import JsonOpt, actor_for, evidence
from pipeline.cli.output import emit_json, say

app = typer.Typer(no_args_is_help=True, help="The signing key of this home.")


@app.command()
def show(json_out: JsonOpt = False) -> None:
    """The key id verifiers must confirm, and where its public key is."""
    from pipeline.custody.keys import load_signer
    from pipeline.settings import load_settings

    settings = load_settings()
    signer = load_signer(settings)
    info = {"key_id": signer.key_id, "backend": type(signer).__name__,
            "public_key": str(settings.signer_public_key or settings.signing_key_path.with_suffix(".pub"))}
    if json_out:
        emit_json(info)
    else:
        say(f"key id {info['key_id']} ({info['backend']}); public key {info['public_key']}")


@app.command()
def rotate(reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the key-change record).")] = "",
           json_out: JsonOpt = False) -> None:
    """New signing key; the old key signs the new key's id (and the new key signs too): verifiers that trust the
    old key trust the new one through that record, which goes into the store and every later bundle."""
    from pipeline.custody.keys import keychange_key, rotate_file_key
    from pipeline.custody.signing import public_pem
    from pipeline.errors import ChainConflict

    ev = evidence()
    rec, old, new = rotate_file_key(ev.settings, reason, actor_for(ev).name)
    bucket = ev.store.buckets["custody"]
    import json

    ev.store.put_bytes(bucket, keychange_key(rec), json.dumps(rec, sort_keys=True).encode(), if_absent=True,
                       lock=True, retention_mode="COMPLIANCE")
    try:
        ev.store.put_bytes(bucket, f"keys/{new.key_id}.pem", public_pem(new.public),
                           content_type="application/x-pem-file", if_absent=True, lock=True)
    except ChainConflict:
        pass
    info = {"old_key_id": old.key_id, "new_key_id": new.key_id, "record": keychange_key(rec)}
    if json_out:
        emit_json(info)
    else:
        say(f"signing key rotated: {old.key_id} -> {new.key_id}; record {info['record']}. Tell your verifiers "
            "the new id; those who trust the old key already trust the new one through the record.")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="key")
