"""The command line through subprocesses, as a person runs it, against a real server."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import MakeServer, ServerThread
from wordstream.shared import new_session_id

pytestmark = pytest.mark.slow  # each test runs the CLI as a process of its own

ROOT = Path(__file__).resolve().parent.parent


def cli(
    server: ServerThread, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WORDSTREAM_SERVER": server.target, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "wordstream.client", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_stream_prints_one_json_line_per_word(server: ServerThread) -> None:
    result = cli(server, "stream", "a", "great film!", "--history")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["word"] for line in lines] == ["a", "great", "film!"]
    assert [line["step"] for line in lines] == [1, 2, 4]
    assert [t["text"] for t in lines[2]["tokens"]] == ["film", "!"]
    assert len({line["session"] for line in lines}) == 1
    assert lines[0]["label"] in ("negative", "positive") and set(lines[0]["probabilities"]) == {"negative", "positive"}
    assert set(lines[0]["state"]) == {"h", "c"} and len(lines[0]["state"]["h"]) == 2  # 2-layer tiny LSTM


def test_score_with_labels_prints_a_summary(server: ServerThread, tmp_path: Path) -> None:
    data = tmp_path / "texts.csv"
    data.write_text("text,label\ngreat superb fun,positive\nawful dull boring,negative\nthe film,positive\n")
    result = cli(server, "score", str(data), "--per-word", "--concurrency", "2")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in lines[:3]] == ["great superb fun", "awful dull boring", "the film"]
    assert [len(line["per_word"]) for line in lines[:3]] == [3, 3, 2]
    summary = lines[3]
    correct = sum(line["label"] == line["gold"] for line in lines[:3])
    assert summary["n"] == 3 and summary["accuracy"] == round(correct / 3, 4) and "macro_f1" in summary


def test_score_multiplex_gives_what_score_gives_on_one_stream(server: ServerThread, tmp_path: Path) -> None:
    data = tmp_path / "texts.txt"
    data.write_text(
        "".join(f"{text}\n" for text in ["great superb fun", "awful dull boring", "the film", "so dull"] * 10)
    )
    own = cli(server, "score", str(data), "--per-word", "--concurrency", "8")
    multiplexed = cli(server, "score", str(data), "--per-word", "--concurrency", "8", "--multiplex")
    assert own.returncode == 0 and multiplexed.returncode == 0, multiplexed.stderr
    a = [json.loads(line) for line in own.stdout.splitlines()]
    b = [json.loads(line) for line in multiplexed.stdout.splitlines()]
    assert len(a) == len(b) == 40
    for x, y in zip(a, b):
        assert (x["line"], x["label"], [w["word"] for w in x["per_word"]]) == (
            y["line"],
            y["label"],
            [w["word"] for w in y["per_word"]],
        )
        for name, p in x["probabilities"].items():
            assert abs(p - y["probabilities"][name]) < 1e-5
    assert not server.service.store.sessions()  # each text's session closed after it


def test_score_reads_plain_lines_from_stdin(server: ServerThread) -> None:
    result = cli(server, "score", "-", stdin="a fine film\n\nso dull\n")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in lines] == ["a fine film", "so dull"] and "gold" not in lines[0]


def test_plot_writes_a_png(server: ServerThread, tmp_path: Path) -> None:
    out = tmp_path / "history.png"
    result = cli(server, "plot", "the film is great but dull", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_models_health_and_history(server: ServerThread) -> None:
    models = [json.loads(line) for line in cli(server, "models").stdout.splitlines()]
    assert [m["name"] for m in models] == ["tiny-gru", "tiny-lstm", "tiny-rnn"]
    assert [m["default"] for m in models] == [False, True, False]
    assert cli(server, "health").stdout.strip() == "SERVING"
    session = json.loads(cli(server, "stream", "fine").stdout.splitlines()[0])["session"]
    history = cli(server, "history", session)  # `stream` leaves its session closed
    assert history.returncode == 1 and history.stderr.startswith("NotFound: session ")


def test_session_ids_never_begin_with_a_dash_and_one_that_does_goes_after_two_dashes(
    server: ServerThread,
) -> None:
    """A CI run once drew an id beginning with '-', and `history ID` read it as an option."""
    assert not any(new_session_id().startswith("-") for _ in range(5000))  # 1 in 64 did before
    client_chosen = "-" + "x" * 31  # a client may pick its own id: '-' is URL-safe base64
    history = cli(server, "history", "--", client_chosen)
    assert history.returncode == 1 and history.stderr.startswith("NotFound: session -xxxxxxx")


def test_errors_print_type_and_message(server: ServerThread) -> None:
    result = cli(server, "stream", "hello", "--model", "nope")
    assert result.returncode == 1 and result.stderr.strip() == (
        "NotFound: unknown model 'nope'; this server has tiny-gru, tiny-lstm, tiny-rnn"
    )
    down = subprocess.run(
        [sys.executable, "-m", "wordstream.client", "health", "--server", "localhost:1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert down.returncode == 1 and down.stderr.startswith("Unavailable: ")


def read_until(fd: int, needle: str, timeout: float = 20.0) -> str:
    """Read the terminal until ``needle`` appears on the latest screen."""
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536).decode("utf-8", errors="replace")
            except OSError:
                break
            screen = seen.rsplit("\x1b[2J", 1)[-1]
            if needle in screen:
                return screen
    raise AssertionError(f"{needle!r} never appeared; last screen: {seen.rsplit(chr(27) + '[2J', 1)[-1]!r}")


def test_type_view_through_a_pseudo_terminal(server: ServerThread) -> None:
    main, child = pty.openpty()
    env = {**os.environ, "WORDSTREAM_SERVER": server.target, "TERM": "xterm"}
    process = subprocess.Popen(
        [sys.executable, "-m", "wordstream.client", "type"],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        cwd=ROOT,
        close_fds=True,
    )
    os.close(child)
    try:
        read_until(main, "type a word and a space")
        os.write(main, b"the film is great ")
        screen = read_until(main, "words: 4  steps: 4")
        assert "> the film is great" in screen and "label: " in screen
        spark = next(line for line in screen.splitlines() if "per word:" in line).split(": ", 1)[1].strip()
        assert len(spark) == 4
        os.write(main, b"\x7f" * 6)  # back over "great " : the session rewinds one word
        screen = read_until(main, "words: 3  steps: 3")
        assert "> the film is" in screen
        os.write(main, b"dull ")
        read_until(main, "words: 4  steps: 4")
        os.write(main, b"\x03")
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()
        os.close(main)


def test_every_subcommand_reaches_a_server_with_tokens_and_tls(make_server: MakeServer, tmp_path: Path) -> None:
    from tests.helpers import self_signed_certificate
    from wordstream.client.cli import parser

    key, cert = self_signed_certificate(tmp_path)
    server: ServerThread = make_server(tokens="cli-token", tls_cert=str(cert), tls_key=str(key))
    required = {"stream": ["a"], "plot": ["a", "--out", "x.png"], "history": ["id"]}
    for name in ("stream", "score", "type", "plot", "models", "health", "history"):  # the README's commands
        flags = ["--token", "t", "--tls", "--root-certificates", "c.pem", "--tls-server-name", "n"]
        args = parser().parse_args([name, *required.get(name, []), *flags])
        assert (args.token, args.tls, args.root_certificates, args.tls_server_name) == ("t", True, "c.pem", "n")
    secured = ("--token", "cli-token", "--root-certificates", str(cert))
    streamed = cli(server, "stream", "a", "fine", "film", *secured)
    assert streamed.returncode == 0, streamed.stderr
    from wordstream.client import Client

    with Client(server.target, token="cli-token", root_certificates=cert.read_bytes()) as client:
        kept = client.session()  # left open, for the history command
        kept.open()
        kept.push("fine")
        session = kept.id
    for command in (("models",), ("health",), ("history", session), ("score", "-")):
        result = cli(server, *command, *secured, stdin="a fine film\n")
        assert result.returncode == 0 and result.stdout, (command, result.stderr)
    env_secured = cli(
        server,
        "models",
        stdin=None,
        env={"WORDSTREAM_TOKEN": "cli-token", "WORDSTREAM_TLS": "true", "WORDSTREAM_ROOT_CERTIFICATES": str(cert)},
    )
    assert env_secured.returncode == 0, env_secured.stderr
    no_token = cli(server, "models", "--root-certificates", str(cert))
    assert no_token.returncode == 1 and no_token.stderr.startswith("Unauthenticated: missing bearer token")
    plaintext = cli(server, "models", "--token", "cli-token")
    assert plaintext.returncode == 1 and plaintext.stderr.startswith("Unavailable:"), plaintext.stderr


def test_the_cli_refuses_a_token_to_a_plaintext_remote_target_unless_told(tmp_path: Path) -> None:
    """`--token` to a plaintext target off this machine: refused, saying why and what to do;
    `--insecure-token` (or WORDSTREAM_INSECURE_TOKEN=1) sends it (here to a port where nothing
    listens: 0.0.0.0 is not loopback by name, and the connection is refused at once)."""
    import os
    import subprocess
    import sys

    command = [sys.executable, "-m", "wordstream.client", "health", "--server", "0.0.0.0:1", "--token", "t"]
    env = {k: v for k, v in os.environ.items() if k != "WORDSTREAM_INSECURE_TOKEN"}
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert refused.returncode == 1 and "refusing to send a bearer token in plaintext" in refused.stderr
    assert "--insecure-token" in refused.stderr
    for extra, extra_env in ((["--insecure-token"], {}), ([], {"WORDSTREAM_INSECURE_TOKEN": "1"})):
        told = subprocess.run(command + extra, capture_output=True, text=True, timeout=90, env={**env, **extra_env})
        assert told.returncode == 1 and "refusing to send a bearer token" not in told.stderr, told.stderr
        assert "Unavailable" in told.stderr, told.stderr  # sent, and nothing listens there
