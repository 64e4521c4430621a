"""``wordstream type``: live typing analysis in a plain terminal.

Each word is sent when it is completed (a space or Enter after it); backspacing over a
completed word rewinds the session by that word. The screen shows the text, the current
label with a probability bar, and a sparkline of the output after every word so far.
Keys: printable characters, Backspace, Enter, Ctrl-U (clear), Ctrl-C or Ctrl-D (quit).
"""

from __future__ import annotations

import os
import sys
import termios
import tty
from dataclasses import dataclass, field

from wordstream.client import errors
from wordstream.client._sync import Client, Session

SPARKS = "▁▂▃▄▅▆▇█"
BAR = 30


def sparkline(values: list[float]) -> str:
    return "".join(SPARKS[min(int(v * len(SPARKS)), len(SPARKS) - 1)] for v in values)


@dataclass
class TypingState:
    """The text typed so far and what the session has read of it."""

    text: str = ""
    sent: list[tuple[str, bool]] = field(default_factory=list)  # (word, accepted by the server)
    trajectory: list[float] = field(default_factory=list)  # probability of the watched label after each word
    label: str = ""
    probability: float = 0.0
    note: str = ""

    def completed_words(self) -> list[str]:
        """Words followed by whitespace: the ones the person has finished typing."""
        end = max(self.text.rfind(" "), self.text.rfind("\n"))
        return self.text[: end + 1].split() if end >= 0 else []


def sync(state: TypingState, session: Session, watched: str) -> None:
    """Bring the session in line with the completed words: rewind what was undone, push what is new."""
    words = state.completed_words()
    keep = 0
    while keep < min(len(words), len(state.sent)) and words[keep] == state.sent[keep][0]:
        keep += 1
    undone = state.sent[keep:]
    accepted_undone = sum(ok for _, ok in undone)
    if accepted_undone:
        session.rewind(accepted_undone)
    del state.sent[keep:]
    del state.trajectory[sum(ok for _, ok in state.sent) :]
    state.note = ""
    for word in words[keep:]:
        try:
            result = session.push(word)
        except errors.InvalidRequest as e:
            state.sent.append((word, False))
            state.note = f"skipped {word!r}: {e}"
            continue
        state.sent.append((word, True))
        if result.output:
            state.trajectory.append(result.output.probabilities[watched])
    history = session.history
    if history:
        last = history[-1].output
        state.label, state.probability = last.label, last.probabilities[last.label]
    else:
        state.label, state.probability = "", 0.0


def render(state: TypingState, session: Session, watched: str) -> str:
    filled = int(round(state.probability * BAR))
    label = (
        f"{state.label:<10} {state.probability:5.2f} [{'#' * filled}{'-' * (BAR - filled)}]"
        if state.label
        else "(type a word and a space)"
    )
    lines = [
        f"Wordstream live typing analysis - model {session.model.name if session.model else '?'}",
        "Space completes a word, Backspace over a word rewinds it, Ctrl-C quits.",
        "",
        f"> {state.text}",
        "",
        f"label: {label}",
        f"P({watched}) per word: {sparkline(state.trajectory)}",
        f"words: {sum(ok for _, ok in state.sent)}  steps: {len(session.history)}  session: {session.id[:8]}",
        state.note,
    ]
    return "\x1b[2J\x1b[H" + "\r\n".join(lines) + "\r\n"


def run_typing_view(client: Client, model: str) -> int:
    fd = sys.stdin.fileno()
    if not os.isatty(fd):
        raise errors.InvalidRequest("type needs an interactive terminal")
    saved = termios.tcgetattr(fd)
    with client.session(model=model) as session:
        watched = session.labels[-1]
        state = TypingState()
        out = sys.stdout
        try:
            tty.setraw(fd)
            out.write(render(state, session, watched))
            out.flush()
            while True:
                data = os.read(fd, 1024).decode("utf-8", errors="replace")
                if not data or "\x03" in data or "\x04" in data:
                    break
                for ch in data:
                    if ch in ("\x7f", "\x08"):
                        state.text = state.text[:-1]
                    elif ch == "\x15":
                        state.text = ""
                    elif ch == "\r":
                        state.text += "\n"
                    elif ch == "\t":
                        state.text += " "
                    elif ch.isprintable():
                        state.text += ch
                sync(state, session, watched)
                out.write(render(state, session, watched))
                out.flush()
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            out.write("\r\n")
    return 0
