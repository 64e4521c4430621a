"""The command line: ``python -m wordstream.client`` (installed as ``wordstream``).

    wordstream stream the film is great          one JSON line per word
    wordstream score reviews.csv                 one JSON line per text, then a summary
    wordstream type                              live typing view in the terminal
    wordstream plot "a fine film" --out s.png    the session's state history as a picture
    wordstream models | health | history ID

Every subcommand takes --server HOST:PORT (default localhost:50051, or WORDSTREAM_SERVER) and,
for a secured server, --token (WORDSTREAM_TOKEN), --tls (WORDSTREAM_TLS=true),
--root-certificates FILE (WORDSTREAM_ROOT_CERTIFICATES) and --tls-server-name NAME
(WORDSTREAM_TLS_SERVER_NAME). Errors print ``Type: message`` on standard error and exit
with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from wordstream.client import errors
from wordstream.client._sync import Client
from wordstream.client.types import WordResult, state_lists
from wordstream.shared import parse_bool


def word_json(result: WordResult, with_state: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "session": result.session_id,
        "step": result.history_length,
        "word_index": result.word_index,
        "word": result.word,
        "tokens": [asdict(tok) for tok in result.tokens],
        "label": result.output.label if result.output else None,
        "probabilities": result.output.probabilities if result.output else None,
    }
    if with_state:
        entry["state"] = state_lists(result.state)
    return entry


def connect(args: argparse.Namespace) -> Client:
    """A client for the server the flags name, with the flags' token and TLS settings."""
    return Client(args.server, **connection(args))


def connection(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of Client and AsyncClient that the connection flags give."""
    roots = None
    if args.root_certificates:
        with open(args.root_certificates, "rb") as f:
            roots = f.read()
    return {
        "token": args.token or None,
        "tls": args.tls,
        "root_certificates": roots,
        "tls_server_name": args.tls_server_name or None,
        "insecure_token": args.insecure_token,
    }


def cmd_stream(args: argparse.Namespace) -> int:
    words = " ".join(args.text).split()
    if not words:
        raise errors.InvalidRequest("stream needs some text")
    with connect(args) as client, client.session(model=args.model) as session:
        for word in words:
            print(json.dumps(word_json(session.push(word), args.history)), flush=True)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    with connect(args) as client:
        models, default = client.models()
    for model in models:
        print(json.dumps({**asdict(model), "default": model.name == default}))
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    with connect(args) as client:
        status = client.health(args.service)
    print(status)
    return 0 if status == "SERVING" else 1


def cmd_history(args: argparse.Namespace) -> int:
    with connect(args) as client:
        record = client.get_session(args.session_id, args.start, args.end)
    for step in record["history"]:
        print(json.dumps(step.to_dict()))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from wordstream.client.score import read_texts, score_texts

    texts = read_texts(args.file, args.format, args.text_column, args.label_column)
    return asyncio.run(score_texts(args.server, connection(args), texts, args))


def cmd_plot(args: argparse.Namespace) -> int:
    from wordstream.client.plot import plot_history

    with connect(args) as client, client.session(model=args.model) as session:
        session.push_text(" ".join(args.text))
        plot_history(session.history, session.labels, args.out, title=" ".join(args.text))
    print(args.out)
    return 0


def cmd_type(args: argparse.Namespace) -> int:
    from wordstream.client.typing_view import run_typing_view

    with connect(args) as client:
        return run_typing_view(client, args.model)


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    """--server, --token, --tls, --root-certificates, --tls-server-name and their WORDSTREAM_* variables
    (every subcommand has them; so does the gateway, python -m wordstream.gateway)."""
    parser.add_argument(
        "--server",
        default=os.environ.get("WORDSTREAM_SERVER", "localhost:50051"),
        help="HOST:PORT of the server (default localhost:50051, or WORDSTREAM_SERVER)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("WORDSTREAM_TOKEN", ""),
        help="bearer token for a server that checks tokens (or WORDSTREAM_TOKEN)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        default=_env_flag("WORDSTREAM_TLS"),
        help="connect with TLS, trusting the system's roots (or WORDSTREAM_TLS=true)",
    )
    parser.add_argument(
        "--root-certificates",
        default=os.environ.get("WORDSTREAM_ROOT_CERTIFICATES", ""),
        metavar="FILE",
        help="PEM file of the certificates to trust; implies --tls (or WORDSTREAM_ROOT_CERTIFICATES)",
    )
    parser.add_argument(
        "--tls-server-name",
        default=os.environ.get("WORDSTREAM_TLS_SERVER_NAME", ""),
        metavar="NAME",
        help="the name the server's certificate must carry, when it is not the host of --server",
    )
    parser.add_argument(
        "--insecure-token",
        action="store_true",
        default=_env_flag("WORDSTREAM_INSECURE_TOKEN"),
        help="send --token over plaintext to a server that is not on this machine (a private network only; "
        "or WORDSTREAM_INSECURE_TOKEN=1); without it such a target is refused",
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wordstream", description="Client for the Wordstream streaming service.")
    commands = p.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        add_connection_flags(sub)
        return sub

    stream = command("stream", "Stream the words of TEXT to a new session; one JSON line per word.")
    stream.add_argument("text", nargs="+")
    stream.add_argument("--model", default="", help="model name (default: the server's default)")
    stream.add_argument("--history", action="store_true", help="add the state after each word")
    stream.set_defaults(run=cmd_stream)

    score = command("score", "Score texts (one per line, or CSV/TSV/JSONL with text and label); a JSON line each.")
    score.add_argument("file", nargs="?", default="-", help="a file, or - for standard input (default)")
    score.add_argument("--format", choices=("auto", "lines", "csv", "tsv", "jsonl"), default="auto")
    score.add_argument("--text-column", default="text")
    score.add_argument("--label-column", default="label")
    score.add_argument("--model", default="")
    score.add_argument("--concurrency", type=int, default=32, help="sessions in flight at once")
    score.add_argument("--per-word", action="store_true", help="add the label and probabilities after each word")
    score.add_argument(
        "--multiplex",
        action="store_true",
        help="every session on one Multiplex stream (the words of the texts in flight leave in one message)",
    )
    score.add_argument("--no-progress", action="store_true", help="no progress bar on standard error")
    score.set_defaults(run=cmd_score)

    typing = command("type", "Live typing analysis in the terminal: label, probability bar, history sparkline.")
    typing.add_argument("--model", default="")
    typing.set_defaults(run=cmd_type)

    plot = command("plot", "Draw a session's state history (heatmap) and output (line) for TEXT to a PNG.")
    plot.add_argument("text", nargs="+")
    plot.add_argument("--out", required=True, help="the PNG file to write")
    plot.add_argument("--model", default="")
    plot.set_defaults(run=cmd_plot)

    command("models", "List the served models, one JSON line each.").set_defaults(run=cmd_models)
    health = command("health", "Print the server's health (SERVING or NOT_SERVING).")
    health.add_argument("--service", default="", help="a service name (default: the whole server)")
    health.set_defaults(run=cmd_health)
    history = command("history", "Print a session's history, one JSON line per step.")
    history.add_argument("session_id", help="the session's id (one that begins with '-' goes after '--')")
    history.add_argument("--start", type=int, default=0)
    history.add_argument("--end", type=int, default=0)
    history.set_defaults(run=cmd_history)
    return p


def _env_flag(name: str) -> bool:
    try:
        return parse_bool(os.environ.get(name) or "false")
    except ValueError as e:
        raise SystemExit(f"ValueError: {name}: {e}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (errors.WordstreamError, ValueError, OSError) as e:
        name = type(e).__name__
        print(f"{name}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


__all__ = ["main"]
