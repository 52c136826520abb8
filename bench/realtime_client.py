"""A client process of the realtime benchmarks: thousands of graphql-transport-ws sockets.

    python -m bench.realtime_client        # driven by bench/realtime.py over stdin/stdout

Commands arrive as JSON lines on stdin; each gets one JSON line on stdout:
- {"cmd": "connect", "url": ..., "subs": [{"key", "token", "query", "variables"}, ...],
  "concurrency": N}: opens one socket per entry (connection_init with
  {"authorization": "Bearer <token>"}, waits for connection_ack, sends `subscribe`), at most
  N handshakes at a time. Answers with counts, failures and the time taken.
- {"cmd": "collect"}: parses what arrived since the last collect and answers with each
  subscription's received sequence numbers (cumulative) and the latency samples.
- {"cmd": "stats"}: open sockets, this process's CPU seconds and RSS.
- {"cmd": "close"}: closes every socket and exits.

Receiving costs as little as possible: the reader of each socket only stamps the arrival
(`time.time_ns()`) and keeps the raw text; parsing happens at `collect`, between runs. So
the client adds little queueing of its own to the measured latency, even when 2,000
messages arrive at once.

Latency samples: for each `next` message, arrival wall clock minus
- the event's `at` (the server's clock when the event row was written, inside the
  committing transaction, a few statements before COMMIT), and
- the time the mutation driver sent the request, carried in the transition's note as
  "r=<run>;t=<ns>" (end to end, the mutation's own processing included).
Server and client run on the same machine, so the wall clocks agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

PROTOCOL = "graphql-transport-ws"
ATTEMPTS = 3


@dataclass
class Sub:
    key: str
    kind: str  # "order" (sequence) or "staff" (accountSequence)
    ws: ClientConnection | None = None
    raw: list[tuple[int, str]] = field(default_factory=list)  # (arrival ns, text)
    seqs: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    closed: str | None = None
    reader: asyncio.Task[None] | None = None


def _at_ns(value: str) -> int:
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return int(dt.timestamp() * 1_000_000) * 1000


def _note_fields(note: Any) -> tuple[str, int | None]:
    """("<run>", sent ns) from a note "r=<run>;t=<ns>"; ("", None) for other events."""
    if not isinstance(note, str) or not note.startswith("r="):
        return "", None
    parts = dict(p.split("=", 1) for p in note.split(";") if "=" in p)
    try:
        return parts.get("r", ""), int(parts["t"])
    except (KeyError, ValueError):
        return parts.get("r", ""), None


class Client:
    def __init__(self) -> None:
        self.subs: dict[str, Sub] = {}
        self.failed: list[str] = []

    async def _open(self, url: str, sub: Sub, spec: dict[str, Any]) -> None:
        last: Exception | None = None
        for attempt in range(ATTEMPTS):
            try:
                ws = await connect(
                    url,
                    subprotocols=[Subprotocol(PROTOCOL)],
                    ping_interval=None,  # the server pings (uvicorn, every 20 s)
                    open_timeout=120,
                    close_timeout=5,
                    max_queue=None,
                )
                await ws.send(
                    json.dumps(
                        {
                            "type": "connection_init",
                            "payload": {"authorization": f"Bearer {spec['token']}"},
                        }
                    )
                )
                ack = json.loads(await asyncio.wait_for(ws.recv(), 120))
                if ack.get("type") != "connection_ack":
                    raise RuntimeError(f"no connection_ack: {ack}")
                await ws.send(
                    json.dumps(
                        {
                            "id": "1",
                            "type": "subscribe",
                            "payload": {"query": spec["query"], "variables": spec["variables"]},
                        }
                    )
                )
                sub.ws = ws
                sub.reader = asyncio.create_task(self._read(sub))
                return
            except (OSError, TimeoutError, ConnectionClosed, RuntimeError) as exc:
                last = exc
                await asyncio.sleep(0.2 * (attempt + 1))
        self.failed.append(f"{sub.key}: {last!r}")

    async def _read(self, sub: Sub) -> None:
        ws = sub.ws
        assert ws is not None
        try:
            async for message in ws:
                now = time.time_ns()
                text = message if isinstance(message, str) else message.decode()
                if '"ping"' in text[:40] and json.loads(text).get("type") == "ping":
                    await ws.send('{"type":"pong"}')
                    continue
                sub.raw.append((now, text))  # collect() swaps the list: look it up each time
        except ConnectionClosed as exc:
            sub.closed = f"{exc!r}"
            return
        sub.closed = f"closed by server: {ws.close_code} {ws.close_reason}"

    async def connect(self, command: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        gate = asyncio.Semaphore(int(command.get("concurrency", 64)))
        url = command["url"]
        before = len(self.failed)

        async def one(spec: dict[str, Any]) -> None:
            sub = Sub(key=spec["key"], kind=spec["kind"])
            self.subs[sub.key] = sub
            async with gate:
                await self._open(url, sub, spec)

        await asyncio.gather(*(one(spec) for spec in command["subs"]))
        return {
            "connected": len(command["subs"]) - (len(self.failed) - before),
            "failed": self.failed[before:][:5],
            "failed_count": len(self.failed) - before,
            "seconds": round(time.monotonic() - started, 3),
        }

    def collect(self) -> dict[str, Any]:
        """Parses what arrived since the last call; samples are
        [run, kind, ms since `at`, ms since sent (or -1), arrival (wall clock, s)]."""
        samples: list[list[Any]] = []
        seqs: dict[str, list[int]] = {}
        errors: dict[str, list[str]] = {}
        closed: dict[str, str] = {}
        for key, sub in self.subs.items():
            pending, sub.raw = sub.raw, []
            for arrived, text in pending:
                message = json.loads(text)
                kind = message.get("type")
                if kind != "next":
                    sub.errors.append(text[:300])
                    continue
                payload = message.get("payload") or {}
                if payload.get("errors"):
                    sub.errors.append(json.dumps(payload["errors"])[:300])
                    continue
                data = payload["data"]
                if sub.kind == "staff":
                    event = data["staffNotifications"]["event"]
                    sub.seqs.append(int(event["accountSequence"]))
                else:
                    event = data["serviceOrderEvents"]
                    sub.seqs.append(int(event["sequence"]))
                run, sent = _note_fields((event.get("data") or {}).get("note"))
                since_at = (arrived - _at_ns(event["at"])) / 1e6
                since_sent = (arrived - sent) / 1e6 if sent is not None else -1.0
                samples.append(
                    [run, sub.kind, round(since_at, 3), round(since_sent, 3), arrived / 1e9]
                )
            seqs[key] = sub.seqs
            if sub.errors:
                errors[key] = sub.errors[:3]
            if sub.closed is not None:
                closed[key] = sub.closed
        return {"seqs": seqs, "samples": samples, "errors": errors, "closed": closed}

    def stats(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        rss_kib = 0
        with contextlib.suppress(OSError), open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss_kib = int(line.split()[1])
        return {
            "open": sum(1 for s in self.subs.values() if s.ws is not None and s.closed is None),
            "cpu": usage.ru_utime + usage.ru_stime,
            "rss_kib": rss_kib,
        }

    async def close(self) -> dict[str, Any]:
        async def shut(sub: Sub) -> None:
            if sub.reader is not None:
                sub.reader.cancel()
            if sub.ws is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sub.ws.close(), 5)

        subs = list(self.subs.values())
        for i in range(0, len(subs), 500):
            await asyncio.gather(*(shut(s) for s in subs[i : i + 500]))
        return {"closed": len(subs)}


async def serve() -> None:
    from bench.realtime_server import raise_open_files_limit

    raise_open_files_limit()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    client = Client()
    while True:
        line = await reader.readline()
        if not line:
            await client.close()
            return
        command = json.loads(line)
        name = command["cmd"]
        try:
            if name == "connect":
                answer = await client.connect(command)
            elif name == "collect":
                answer = client.collect()
            elif name == "stats":
                answer = client.stats()
            elif name == "close":
                answer = await client.close()
            else:
                answer = {"error": f"unknown command {name}"}
        except Exception as exc:  # reported to the orchestrator, which fails the run
            answer = {"error": repr(exc)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        if name == "close":
            return


def main() -> None:
    uvloop.run(serve())


if __name__ == "__main__":
    main()
