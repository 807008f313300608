"""``fedctl traffic test``: watch, second by second, which regions answer a URL and what fails.

A person runs it against an application's address while a region goes down and sees the answers move
to the other regions in the terminal; the engine is :mod:`federation.cli.probing` (shared with the demo
and the traffic benchmark). Lines are plain and stable off a TTY (for grep and logs), coloured on one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from federation.cli.probing import Second, Summary

app = typer.Typer(help="Probe traffic to an application's address.", no_args_is_help=True)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}ms" if value < 10 else f"{value:.0f}ms"


def _counts(counts: dict[str, int]) -> str:
    return " ".join(f"{name}={n}" for name, n in counts.items())


def second_line(second: Second, regions: list[str]) -> str:
    """``  3s  us-central1=120 europe-west1=80  failed=0  p99=12ms``: every region seen so far, in the
    order first seen, so a region that stops answering shows ``=0``; failures by kind in parentheses."""
    by_region = " ".join(f"{r}={second.by_region.get(r, 0)}" for r in regions) or "answers=0"
    failed = f"failed={second.failed}"
    if second.failures:
        failed += f" ({_counts(second.failures)})"
    return f"{second.t:>3}s  {by_region}  {failed}  p99={_ms(second.p99_ms)}"


def summary_lines(summary: Summary) -> list[str]:
    return [
        f"summary: sent={summary.sent} ok={summary.ok} failed={summary.failed} "
        f"({summary.failure_fraction:.2%}) in {summary.duration:.1f}s",
        f"  by region: {_counts(summary.by_region) or 'none'}",
        f"  failures: {_counts(summary.failures) or 'none'}",
        f"  latency: p50={_ms(summary.p50_ms)} p90={_ms(summary.p90_ms)} "
        f"p99={_ms(summary.p99_ms)} max={_ms(summary.max_ms)}",
    ]


class _Printer:
    """Plain lines off a TTY; rich colour on one. With ``--json`` everything but the JSON goes to stderr."""

    def __init__(self, *, to_stderr: bool) -> None:
        self.stream = sys.stderr if to_stderr else sys.stdout
        self.regions: list[str] = []
        self.console = None
        if self.stream.isatty():
            from rich.console import Console

            self.console = Console(file=self.stream, highlight=False, soft_wrap=True)

    def line(self, text: str, *, style: str | None = None) -> None:
        if self.console is not None:
            self.console.print(text, style=style, markup=False)
        else:
            print(text, file=self.stream, flush=True)

    def second(self, second: Second) -> None:
        self.regions.extend(r for r in second.by_region if r not in self.regions)
        style = None
        if self.console is not None:
            style = "red" if second.failed and not second.ok else "yellow" if second.failed else "green"
        self.line(second_line(second, self.regions), style=style)


async def _run(
    url: str,
    *,
    rate: int,
    duration: int,
    request_timeout: float,
    allow_remote: bool,
    printer: _Printer,
) -> Summary:
    from federation.cli.probing import probe

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def interrupted() -> None:  # the first Ctrl-C ends the sending and still prints the summary
        stop.set()
        loop.remove_signal_handler(signal.SIGINT)

    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this platform or thread
        loop.add_signal_handler(signal.SIGINT, interrupted)
    try:
        return await probe(
            url,
            rate=rate,
            duration=duration,
            timeout=request_timeout,
            on_second=printer.second,
            allow_remote=allow_remote,
            stop=stop,
        )
    finally:
        loop.remove_signal_handler(signal.SIGINT)


@app.command("test")
def traffic_test(
    url: Annotated[
        str, typer.Argument(metavar="URL", help="The address to GET, e.g. http://127.0.0.1:8080/.")
    ],
    rate: Annotated[int, typer.Option("--rate", help="Requests a second (1..2000).", min=1, max=2000)] = 10,
    duration: Annotated[
        int, typer.Option("--duration", help="Seconds of sending (1..3600).", min=1, max=3600)
    ] = 10,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds a request may take before it fails.", min=0.01, max=60)
    ] = 2.0,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow a host that is not loopback, on purpose.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on stdout (the rest on stderr).")
    ] = False,
) -> None:
    """Send --rate GET requests a second to URL for --duration seconds.

    Prints each second's answers by region and failures by kind, then a summary.
    Sending is paced and open-loop (a slow answer does not slow it).
    An answer's region: its X-Sim-Cluster header, else JSON "region"/"cluster".
    Loopback hosts only, unless --allow-remote. Ctrl-C stops early.
    Exit 0 when it ran (even with failures), 1 when nothing answered, 2 usage.

    Example: fedctl traffic test http://127.0.0.1:41234/ --rate 100 --duration 30
    """
    from federation.cli.probing import ProbeError, check_target

    try:
        check_target(url, allow_remote=allow_remote)
    except ProbeError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    printer = _Printer(to_stderr=as_json)
    printer.line(f"probing {url} at {rate}/s for {duration}s (timeout {timeout:g}s)", style="bold")
    try:
        summary = asyncio.run(
            _run(
                url,
                rate=rate,
                duration=duration,
                request_timeout=timeout,
                allow_remote=allow_remote,
                printer=printer,
            )
        )
    except ProbeError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    for text in summary_lines(summary):
        printer.line(text)
    if as_json:
        typer.echo(json.dumps(summary.to_json(), indent=2))
    if summary.answered == 0:
        typer.echo(f"error: nothing answered at {url}", err=True)
        raise typer.Exit(1)
