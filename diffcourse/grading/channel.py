r"""The grader's channel from its fresh process: JSON lines, each signed with a key only the two ends know.

The grader (`diffcourse.grading.isolation`) makes a random key for every notebook and hands it to its
worker process on standard input, which the worker reads to the end before it runs any of the learner's
code. The worker writes its results to the *original* standard output (every print goes elsewhere),
each line as ``HMAC-SHA256(key, body) body``. A line written by anything else — a learner's function that
finds the pipe and writes ``{"passed": true}`` into it — carries no valid signature: `read_signed` drops
it and reports it, and the grader marks the notebook as having tampered with grading.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Callable, Iterable, TextIO

__all__ = ["signer", "read_signed"]


def _mac(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


def signer(stream: TextIO, key: bytes) -> Callable[[dict[str, Any]], None]:
    """A function that writes one signed message to ``stream`` and flushes it (the key stays in its closure)."""

    def send(message: dict[str, Any]) -> None:
        body = json.dumps(message, ensure_ascii=False, sort_keys=True)
        stream.write(f"{_mac(key, body)} {body}\n")
        stream.flush()

    return send


def read_signed(lines: Iterable[str], key: bytes) -> tuple[list[dict[str, Any]], int]:
    """The messages among ``lines`` whose signature is valid, in order, and how many lines were not (forgeries, or
    output that reached the channel by another way)."""
    messages, bad = [], 0
    for line in lines:
        mac, _, body = line.rstrip("\n").partition(" ")
        if not line.strip():
            continue
        if body and hmac.compare_digest(mac, _mac(key, body)):
            try:
                messages.append(json.loads(body))
                continue
            except ValueError:
                pass
        bad += 1
    return messages, bad
