"""`nac bench`, the load generator's command (registered by nac/cli/main.py); `python -m nac.bench`
runs the same command on its own, so the two cannot drift apart."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nac.cli.common import JsonOption, _fail, _print_json

#: This module's command; nac/cli/main.py adds it to `nac`.
app = typer.Typer()


@app.command()
def bench(
    secret_file: Annotated[
        Path | None,
        typer.Option(
            "--secret-file", help="File holding the shared secret (unlike --secret, ps never shows it)."
        ),
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret", help="The shared secret itself, for test secrets such as testing123 (ps shows it)."
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Server address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Authentication port.")] = 1812,
    count: Annotated[
        int | None, typer.Option("--count", min=1, help="Requests to send (default 10,000).")
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", min=0.1, help="Seconds to send for.")
    ] = None,
    window: Annotated[int, typer.Option("--window", min=1, help="Requests in flight.")] = 128,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for a reply.")] = 2.0,
    retries: Annotated[
        int, typer.Option("--retries", min=0, help="Retransmissions of an unanswered request.")
    ] = 0,
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=1, help="Requests/s to pace at (default: as fast as the window allows)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Load a RADIUS server with MAB requests (allowed, quarantined and banned MACs in every
    spelling) and report requests/s, latency percentiles and reply counts.

    Example: nac bench --secret-file /etc/nac/bench.secret --duration 10 --window 128

    With --rate, the latency at a given load (e.g. 80 % of the peak the first form measured).
    """
    # Not nac.bench: that module runs this command under `python -m`, so it imports this one.
    from nac.bench.loop import run  # noqa: PLC0415 - `nac --help` needs none of it

    if count is not None and duration is not None:
        _fail("--count and --duration exclude each other", 2)
    if (secret_file is None) == (secret is None):
        _fail("give the shared secret: --secret-file FILE (or --secret for a test secret), one of them", 2)
    if secret_file is not None:
        try:
            key = secret_file.read_bytes().strip()
        except OSError as exc:
            _fail(f"{secret_file}: cannot read: {exc.strerror}", 2)
        if not key:
            _fail(f"{secret_file}: the secret is empty", 2)
    else:
        key = (secret or "").encode()
        if not key:
            _fail("--secret: the secret is empty", 2)
    try:
        result = run(
            host=host,
            port=port,
            secret=key,
            count=count,
            duration=duration,
            window=window,
            timeout=timeout,
            retries=retries,
            rate=rate,
        )
    except (ValueError, OSError) as exc:
        _fail(str(exc), 2)
    if as_json:
        _print_json(result.as_dict())
    else:
        typer.echo(result.format_text())


def main() -> None:
    """`python -m nac.bench`: the command above, on its own."""
    typer.main.get_command(app)(prog_name="python -m nac.bench")
