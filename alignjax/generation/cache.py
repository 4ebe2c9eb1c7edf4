"""The persistent cache of answers: one SQLite file, one row per answered request, written as each answer arrives.

A pipeline asks thousands of questions of a teacher or judge; killed halfway (preempted, out of memory, Ctrl-C),
its rerun must not pay for them again. So each answer is committed the moment it arrives, and a rerun looks every
request up before sending any. The key is the SHA-256 of the canonical JSON of everything that decides the answer:
the backend's kind, the model, and the request (messages, sampling parameters, n, seed). Not the endpoint's URL:
the same model served on another port or host is the same teacher.

The file is in WAL mode with `synchronous=NORMAL`: a commit survives the process being killed (SIGKILL included),
and several processes may share one file (writers wait for each other up to `BUSY_TIMEOUT_S`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable

from alignjax.generation.chat import ChatRequest, Completion

BUSY_TIMEOUT_S = 60.0
_LOOKUP_CHUNK = 500  # keys per SELECT, under SQLite's limit on bound parameters

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,   -- cache_key(kind, model, request)
    request TEXT NOT NULL,  -- {"kind", "model", "request"}: what was asked, for whoever inspects the file
    answer TEXT NOT NULL,   -- Completion.to_json()
    created REAL NOT NULL   -- Unix time
)
"""


def cache_key(kind: str, model: str, request: ChatRequest) -> str:
    """The hex SHA-256 of what decides an answer: the backend's kind, the model and the request."""
    return hashlib.sha256(_identity(kind, model, request).encode()).hexdigest()


def _identity(kind: str, model: str, request: ChatRequest) -> str:
    return json.dumps({"kind": kind, "model": model, "request": json.loads(request.canonical())}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)


class Cache:
    """Answers by key, in the SQLite file at `path` (created, with its directory, if absent).

    Safe to use from several threads (one connection behind a lock) and several processes (SQLite's locking).
    """

    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        try:
            self._db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as e:
            raise sqlite3.DatabaseError(f"{path}: not a usable generation cache ({e})") from e
        self._lock = threading.Lock()

    def get(self, keys: Iterable[str]) -> dict[str, Completion]:
        """The cached answers among `keys` (marked `cached`); keys not in the cache are left out."""
        keys = list(dict.fromkeys(keys))
        found = {}
        with self._lock:
            for start in range(0, len(keys), _LOOKUP_CHUNK):
                chunk = keys[start : start + _LOOKUP_CHUNK]
                rows = self._db.execute(
                    f"SELECT key, answer FROM answers WHERE key IN ({','.join('?' * len(chunk))})", chunk
                )
                found.update((key, Completion.from_json(answer, cached=True)) for key, answer in rows)
        return found

    def put(self, kind: str, model: str, request: ChatRequest, answer: Completion) -> str:
        """Stores `answer` to `request` and commits at once; returns its key."""
        key = cache_key(kind, model, request)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO answers (key, request, answer, created) VALUES (?, ?, ?, ?)",
                (key, _identity(kind, model, request), answer.to_json(), time.time()),
            )
            self._db.commit()
        return key

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
