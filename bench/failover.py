"""Failovers of the sharded store under load: three primary kills, nothing lost.

    python -m bench.failover                          # 100 sessions, 3 kills; writes docs/bench-runs/failover-*.json
    python -m bench.failover --sessions 20 --no-write # a short look

One replica of ours (``python -m wordstream.server`` on the default models) on a Redis Cluster of
six local nodes (deploy.cluster.RedisCluster: 3 primaries with a replica each, AOF on,
cluster-node-timeout 500 ms). ``--sessions`` clients type the test split's words, a word every
50 ms each, while the primaries die, one at a time:

1. the primary of shard A is SIGKILLed; once its replica serves, the old primary is restarted
   and rejoins as a replica;
2. the primary of shard B is SIGKILLed (and restarted the same way);
3. shard A's primary again: the replica promoted in step 1, so A's old primary must take over.

For each kill: the time from the kill to the first answer to a word sent after it by a session
of that shard. At the end every session's words on the server (GetSession) are compared with
the words its client sent, and its last output with an offline ONNX Runtime run of those words:
words lost and outputs wrong must both be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import texts
from bench.servers import ROOT, start_service, write_figures
from deploy.cluster import RedisCluster, RedisNode, wait_for
from wordstream.client import AsyncClient, AsyncSession
from wordstream.modelfile import load_model
from wordstream.server.redis_ledger import keys

GOAL_SECONDS = 3.0


class Typists:
    """Sessions typing until told to stop, each answer's send time and latency kept."""

    def __init__(self, client: AsyncClient, sessions: int, words: list[str], seed: int = 13) -> None:
        rng = random.Random(seed)
        self.sessions = [client.session(history="none") for _ in range(sessions)]
        self.texts = [[rng.choice(words) for _ in range(2000)] for _ in range(sessions)]
        self.answers: dict[str, list[tuple[float, float]]] = {}
        self.stopped = asyncio.Event()

    async def type(self, session: AsyncSession, text: list[str]) -> None:
        for word in text:
            if self.stopped.is_set():
                return
            sent = time.monotonic()
            await session.push(word)
            self.answers.setdefault(session.id, []).append((sent, time.monotonic()))
            await asyncio.sleep(0.05)


def kill_and_rejoin(cluster: RedisCluster, session_id: str) -> tuple[RedisNode, float]:
    """SIGKILL the primary serving ``session_id``; once its replica serves, restart it (it rejoins
    as a replica) and wait until it is in sync. Returns the killed node and when it died."""
    key = keys(session_id)[0]
    victim = cluster.primary_of(key)
    killed = time.monotonic()
    victim.kill()
    wait_for(lambda: cluster.primary_of(key) is not victim, "the replica to take over", 30)
    victim.start()
    wait_for(cluster.ready, "the old primary to rejoin in sync", 60)
    return victim, killed


def first_answer(typists: Typists, shard: set[str], killed: float) -> float:
    """Seconds from the kill to the first answer to a word a session of the shard sent after it."""
    return min(done - killed for i in shard for sent, done in typists.answers.get(i, []) if sent >= killed)


async def run(args: argparse.Namespace, cluster: RedisCluster, target: str) -> dict[str, Any]:
    client = AsyncClient(target, reconnect_timeout=30)
    typists = Typists(client, args.sessions, list(texts.words()))
    await asyncio.gather(*(s.open() for s in typists.sessions))
    home = {s.id: cluster.primary_of(keys(s.id)[0]).port for s in typists.sessions}
    shards = sorted(set(home.values()))
    a = next(s.id for s in typists.sessions if home[s.id] == shards[0])
    b = next(s.id for s in typists.sessions if home[s.id] == shards[1])
    typing = [asyncio.ensure_future(typists.type(s, t)) for s, t in zip(typists.sessions, typists.texts)]
    kills = []
    for label, session_id in (("shard A", a), ("shard B", b), ("shard A again", a)):
        await asyncio.sleep(args.between)
        port = cluster.primary_of(keys(session_id)[0]).port
        on_shard = {i for i in home if cluster.primary_of(keys(i)[0]).port == port}
        victim, killed = await asyncio.to_thread(kill_and_rejoin, cluster, session_id)
        await asyncio.sleep(0.5)
        seconds = round(first_answer(typists, on_shard, killed), 3)
        kills.append({"kill": label, "node": victim.address, "sessions": len(on_shard), "first_answer_s": seconds})
    await asyncio.sleep(args.between)
    typists.stopped.set()
    await asyncio.gather(*typing)
    sent = {s.id: list(s.words) for s in typists.sessions}
    replays = sum(s.replays for s in typists.sessions)
    resent = sum(s.resent for s in typists.sessions)
    held = {i: await client.get_session(i) for i in sent}
    await client.close()
    answered = sum(len(v) for v in typists.answers.values())
    return {
        "kills": kills,
        "sent": sent,
        "held": held,
        "replays": replays,
        "resent": resent,
        "words_answered": answered,
    }


def checked(result: dict[str, Any], model_path: Path) -> dict[str, int]:
    """Words lost (held != sent) and last outputs that differ from an offline run of the sent words."""
    model = load_model(model_path, threads=0)
    lost = wrong = 0
    for session_id, words in result["sent"].items():
        record = result["held"][session_id]
        steps = record["history"]
        if [s.word for i, s in enumerate(steps) if i == 0 or s.word_index != steps[i - 1].word_index] != words:
            lost += 1
            continue
        state, probs = model.initial_state(1), None
        for token in [t for w in words for t in model.codec.encode_ids(w)]:
            probs, state = model.run(np.array([token], np.int64), state)
        if probs is not None and not np.allclose(list(steps[-1].output.probabilities.values()), probs[0], atol=1e-5):
            wrong += 1
    return {"sessions_with_words_lost": lost, "sessions_with_wrong_outputs": wrong}


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Measured {report['when']} with `{report['command']}`: {report['sessions']} sessions typing a word every "
        f"50 ms each through one replica, {report['words_answered']:,} words answered.",
        "",
        "| kill | node | sessions on the shard | kill → first answer (s) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {k['kill']} | {k['node']} | {k['sessions']} | {k['first_answer_s']:.2f} |" for k in report["kills"]]
    seconds = [k["first_answer_s"] for k in report["kills"]]
    nothing_lost = not report["sessions_with_words_lost"] and not report["sessions_with_wrong_outputs"]
    met = "met" if max(seconds) <= GOAL_SECONDS and nothing_lost else "**not met**"
    lines += [
        "",
        f"Sessions with words lost: {report['sessions_with_words_lost']}; with a wrong last output: "
        f"{report['sessions_with_wrong_outputs']}; words the clients sent again after a failover lost them: "
        f"{report['resent']}; sessions replayed: {report['replays']}. Goal, every kill answered again within "
        f"{GOAL_SECONDS:g} s and nothing lost: {met} (slowest {max(seconds):.2f} s, median "
        f"{statistics.median(seconds):.2f} s).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="models")
    parser.add_argument("--model", default="sentiment-lstm")
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--between", type=float, default=2.0, help="seconds of typing before each kill")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where SCALING.md and bench-runs/ are")
    parser.add_argument("--no-write", action="store_true", help="print the figures, write nothing")
    args = parser.parse_args(argv)
    cluster = RedisCluster(Path(tempfile.mkdtemp(prefix="wordstream-failover-"))).start()
    store = ["--state-store", cluster.url, "--default-model", args.model]
    replica = start_service("replica1", args.models, extra=store)
    try:
        result = asyncio.run(run(args, cluster, replica.target))
    finally:
        replica.stop()
        cluster.stop()
    command = "python -m bench.failover" + ("" if argv is None else " " + " ".join(argv))
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "sessions": args.sessions,
        "kills": result["kills"],
        "words_answered": result["words_answered"],
        "replays": result["replays"],
        "resent": result["resent"],
        **checked(result, Path(args.models) / f"{args.model}.onnx"),
    }
    print(markdown(report), end="")
    if not args.no_write:
        write_figures(Path(args.out), "failover", report, markdown(report))
    return 0 if not report["sessions_with_words_lost"] and not report["sessions_with_wrong_outputs"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
