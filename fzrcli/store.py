"""fzr's SQLite state: requests, items, the scan cursors, the token cache, run history.

Every step commits on its own, so a pass killed at any instant leaves a consistent file
and the next pass carries on from there. The schema is versioned with
``PRAGMA user_version``; each migration and its version bump commit together.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from fzrcli.errors import BusyError, FzrError
from fzrcli.timeutil import utc_iso

# Request states. A FINISHED request is decided; a FETCHED one is never fetched again.
SEEN, OPEN, ACTIVE, DONE = "seen", "open", "active", "done"
REFUSED, TERMINATED, CANCELED, INVALID, GONE = (
    "refused",
    "terminated",
    "canceled",
    "invalid",
    "gone",
)
UNMATCHED = "unmatched"  # approved, but the field settings match nothing on its form
FINISHED = (ACTIVE, DONE, REFUSED, TERMINATED, CANCELED, INVALID, GONE)
FETCHED = (*FINISHED, UNMATCHED)

# Item states; the first two are not final.
PENDING, WRITING = "pending", "writing"
ASSIGNED, ALREADY_OWNER = "assigned", "already_owner"
NOT_FOUND, AMBIGUOUS, UNVERIFIED, FAILED = (
    "not_found",
    "ambiguous",
    "unverified",
    "failed",
)
FINAL_ITEM = (ASSIGNED, ALREADY_OWNER, NOT_FOUND, AMBIGUOUS, UNVERIFIED, FAILED)
NEEDS_HUMAN = (NOT_FOUND, AMBIGUOUS, UNVERIFIED, FAILED)
STATUS_WORDS = {  # item states as people read them
    ASSIGNED: "assigned",
    ALREADY_OWNER: "already owner",
    NOT_FOUND: "not found",
    AMBIGUOUS: "ambiguous",
    UNVERIFIED: "unverified",
    FAILED: "failed",
    PENDING: "pending",
    WRITING: "being written",
}

# Comment states.
COMMENT_DUE, COMMENT_SENDING, COMMENT_SENT, COMMENT_FAILED = (
    "due",
    "sending",
    "sent",
    "failed",
)

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE requests (
        instance_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        business_id TEXT,
        title TEXT,
        originator_id TEXT,
        status TEXT,
        result TEXT,
        reason TEXT,
        created_ms INTEGER,
        created_lb_ms INTEGER,
        finished_ms INTEGER,
        raw TEXT,
        parsed TEXT,
        manual INTEGER NOT NULL DEFAULT 0,
        first_seen_at TEXT NOT NULL,
        fetched_at TEXT,
        decided_at TEXT,
        updated_at TEXT NOT NULL,
        comment_state TEXT,
        comment_text TEXT,
        comment_at TEXT,
        comment_error TEXT
    );
    CREATE INDEX requests_state ON requests (state);
    CREATE INDEX requests_decided ON requests (decided_at);
    CREATE INDEX requests_business ON requests (business_id);
    CREATE INDEX requests_comment ON requests (comment_state);
    CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        instance_id TEXT NOT NULL REFERENCES requests (instance_id),
        customer TEXT NOT NULL,
        new_owner_id TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        suggestion TEXT,
        data_id INTEGER,
        owners_before TEXT,
        owners_after TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        manual INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        finished_at TEXT,
        UNIQUE (instance_id, customer, new_owner_id)
    );
    CREATE INDEX items_status ON items (status);
    CREATE INDEX items_finished ON items (finished_at, status);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        instance_id TEXT NOT NULL,
        item_id INTEGER,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT
    );
    CREATE INDEX events_instance ON events (instance_id);
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        command TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        exit_status INTEGER,
        dingtalk_calls INTEGER NOT NULL DEFAULT 0,
        dingtalk_metered INTEGER NOT NULL DEFAULT 0,
        xbb_calls INTEGER NOT NULL DEFAULT 0,
        xbb_writes INTEGER NOT NULL DEFAULT 0,
        counts TEXT,
        message TEXT
    );
    CREATE INDEX runs_started ON runs (started_at);
    """,
)


@dataclass
class Item:
    id: int
    instance_id: str
    customer: str
    new_owner_id: str
    status: str
    reason: str | None
    suggestion: str | None
    data_id: int | None
    owners_before: list[str] | None
    attempts: int
    manual: bool


class Store:
    def __init__(self, path: Path, exclusive: bool = False):
        """Open (creating and migrating) the state file. ``exclusive`` takes the
        single-pass lock first, before the file is touched, so two passes starting
        at once never race on it: the second stops with BusyError."""
        self.path = Path(path)
        self.lock = threading.RLock()
        self.lock_file = None
        self._make_folder()
        if exclusive:
            self.acquire_pass_lock()
        self.db = self._connect()
        self._migrate()

    def _make_folder(self) -> None:
        if self.path.is_dir():
            raise FzrError(
                f"the state file {self.path} is a folder; point FZR_DB at a "
                "file (it is created if missing)"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise FzrError(
                f"cannot create the folder for the state file {self.path}: "
                f"{exc.strerror}"
            ) from None

    def _connect(self) -> sqlite3.Connection:
        old_umask = os.umask(0o077)
        try:
            db = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            _refuse_foreign(db, self.path)
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            raise FzrError(f"cannot open state file {self.path}: {exc}") from None
        finally:
            os.umask(old_umask)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise FzrError(
                f"state file {self.path} was written by a newer fzr (schema {version})"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                # Two first runs may race to create the file: read the version again
                # under the write lock, so the loser finds the winner's tables.
                if self.db.execute("PRAGMA user_version").fetchone()[0] >= number:
                    continue
                for statement in script.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()
        if self.lock_file:
            self.lock_file.close()

    # -- the single-pass lock -------------------------------------------------------

    def acquire_pass_lock(self) -> None:
        """Hold an flock on ``<db>.lock`` for the life of the process; the kernel frees
        it if the process dies, so a killed pass never leaves a stale lock."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        old_umask = os.umask(0o077)
        try:
            handle = open(lock_path, "a+")
        finally:
            os.umask(old_umask)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise BusyError(
                f"another fzr pass is running (pid {holder}); nothing done"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self.lock_file = handle

    # -- key/value state ------------------------------------------------------------

    def get_state(self, key: str, default: Any = None) -> Any:
        row = self.db.execute(
            "SELECT value FROM state WHERE key = ?", (key,)
        ).fetchone()
        return json.loads(row["value"]) if row else default

    def set_state(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO state (key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at",
            (key, json.dumps(value), utc_iso()),
        )

    def delete_state(self, key: str) -> None:
        self.db.execute("DELETE FROM state WHERE key = ?", (key,))

    # -- the access-token cache -----------------------------------------------------

    def save_token(self, token: str, expires_ms: int, key: str) -> None:
        """Cache the DingTalk token sealed with the app secret: the file alone never
        yields a usable token, and a rotated secret invalidates the cache."""
        sealed = {"sealed": _seal(token, key), "expires_ms": expires_ms}
        with self.lock:
            self.set_state("dingtalk_token", sealed)

    def load_token(self, key: str) -> tuple[str, int] | None:
        cached = self.get_state("dingtalk_token")
        if not cached:
            return None
        token = _unseal(cached.get("sealed", ""), key)
        return (token, int(cached["expires_ms"])) if token else None

    def forget_token(self) -> None:
        with self.lock:
            self.delete_state("dingtalk_token")

    # -- requests -------------------------------------------------------------------

    def request(self, instance_id: str) -> sqlite3.Row | None:
        return self.db.execute(
            "SELECT * FROM requests WHERE instance_id = ?", (instance_id,)
        ).fetchone()

    def find_request(self, key: str) -> sqlite3.Row | None:
        return self.db.execute(
            "SELECT * FROM requests WHERE instance_id = ? OR business_id = ? "
            "ORDER BY instance_id = ? DESC LIMIT 1",
            (key, key, key),
        ).fetchone()

    def request_states(self, instance_ids: list[str]) -> dict[str, str]:
        states: dict[str, str] = {}
        for chunk in _chunks(instance_ids, 500):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                "SELECT instance_id, state FROM requests "
                f"WHERE instance_id IN ({marks})",
                chunk,
            )
            states.update({row["instance_id"]: row["state"] for row in rows})
        return states

    def note_seen(
        self, instance_id: str, created_lb_ms: int, state: str = SEEN
    ) -> bool:
        """Record an id met in a listing; True when it is new."""
        now = utc_iso()
        cursor = self.db.execute(
            "INSERT INTO requests (instance_id, state, created_lb_ms, first_seen_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (instance_id) DO NOTHING",
            (instance_id, state, created_lb_ms, now, now),
        )
        if cursor.rowcount:
            what = "listed as running" if state == OPEN else "listed as finished"
            self.add_event(instance_id, "seen", what)
        return bool(cursor.rowcount)

    def mark_to_fetch(self, instance_id: str, why: str) -> None:
        self.db.execute(
            "UPDATE requests SET state = ?, updated_at = ? WHERE instance_id = ? "
            "AND state = ?",
            (SEEN, utc_iso(), instance_id, OPEN),
        )
        self.add_event(instance_id, "seen", why)

    def open_requests(self) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT instance_id, created_ms, created_lb_ms FROM requests "
            "WHERE state = ?",
            (OPEN,),
        ).fetchall()

    def requests_in_state(self, state: str) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM requests WHERE state = ? ORDER BY instance_id", (state,)
        ).fetchall()

    def ids_in_state(self, state: str) -> list[str]:
        rows = self.db.execute(
            "SELECT instance_id FROM requests WHERE state = ? ORDER BY instance_id",
            (state,),
        )
        return [row["instance_id"] for row in rows]

    def save_fetched(
        self,
        instance_id: str,
        state: str,
        facts: dict,
        raw: object,
        parsed: dict | None = None,
    ) -> None:
        now = utc_iso()
        previous = self.request(instance_id)
        decided = now if state in FINISHED else None
        self.db.execute(
            "UPDATE requests SET state = ?, business_id = ?, title = ?, "
            "originator_id = ?, status = ?, result = ?, created_ms = ?, "
            "finished_ms = ?, raw = ?, parsed = ?, fetched_at = ?, reason = NULL, "
            "decided_at = COALESCE(decided_at, ?), updated_at = ? "
            "WHERE instance_id = ?",
            (
                state,
                facts.get("business_id"),
                facts.get("title"),
                facts.get("originator_id"),
                facts.get("status"),
                facts.get("result"),
                facts.get("created_ms"),
                facts.get("finished_ms"),
                json.dumps(raw, ensure_ascii=False),
                json.dumps(parsed, ensure_ascii=False) if parsed else None,
                now,
                decided,
                now,
                instance_id,
            ),
        )
        if previous is None or previous["status"] != facts.get("status"):
            detail = f"DingTalk status {facts.get('status')}"
            if facts.get("result"):
                detail += f", result {facts.get('result')}"
            self.add_event(instance_id, "status", detail)

    def set_request_state(
        self, instance_id: str, state: str, reason: str | None = None
    ):
        now = utc_iso()
        decided = now if state in FINISHED else None
        self.db.execute(
            "UPDATE requests SET state = ?, reason = COALESCE(?, reason), "
            "decided_at = COALESCE(decided_at, ?), updated_at = ? "
            "WHERE instance_id = ?",
            (state, reason, decided, now, instance_id),
        )
        self.add_event(instance_id, "state", state + (f": {reason}" if reason else ""))

    def active_requests(self) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM requests WHERE state = ? ORDER BY created_ms, instance_id",
            (ACTIVE,),
        ).fetchall()

    def create_manual_request(self, label: str) -> str:
        now = utc_iso()
        count = self.db.execute("SELECT COUNT(*) FROM requests WHERE manual = 1")
        instance_id = f"manual-{count.fetchone()[0] + 1}-{now}"
        self.db.execute(
            "INSERT INTO requests (instance_id, state, title, manual, first_seen_at, "
            "decided_at, updated_at) VALUES (?, ?, ?, 1, ?, ?, ?)",
            (instance_id, ACTIVE, label, now, now, now),
        )
        self.add_event(instance_id, "manual", label)
        return instance_id

    # -- items ----------------------------------------------------------------------

    def add_items(
        self,
        instance_id: str,
        customers: list[str],
        owners: list[str],
        manual: bool = False,
    ) -> None:
        now = utc_iso()
        self.db.executemany(
            "INSERT INTO items (instance_id, customer, new_owner_id, status, manual, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (instance_id, customer, new_owner_id) DO NOTHING",
            [
                (instance_id, customer, owner, PENDING, int(manual), now, now)
                for customer in customers
                for owner in owners
            ],
        )

    def items_of(self, instance_id: str) -> list[Item]:
        rows = self.db.execute(
            "SELECT * FROM items WHERE instance_id = ? ORDER BY id", (instance_id,)
        )
        return [_item(row) for row in rows]

    def unfinished_items(self, manual: bool = False) -> list[Item]:
        rows = self.db.execute(
            "SELECT items.* FROM items JOIN requests USING (instance_id) "
            "WHERE items.status IN (?, ?) AND requests.state = ? AND items.manual = ? "
            "ORDER BY items.id",
            (PENDING, WRITING, ACTIVE, int(manual)),
        )
        return [_item(row) for row in rows]

    def items_of_ids(self, item_ids: list[int]) -> list[Item]:
        found: list[Item] = []
        for chunk in _chunks(item_ids, 500):
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT * FROM items WHERE id IN ({marks})", chunk)
            found.extend(_item(row) for row in rows)
        return found

    def start_write(self, item: Item, data_id: int, owners_before: list[str]) -> None:
        """Mark an item as being written *before* the CRM call, so a crash after the
        write is found and checked against the CRM instead of written again."""
        self.db.execute(
            "UPDATE items SET status = ?, data_id = ?, owners_before = ?, "
            "attempts = attempts + 1, updated_at = ? WHERE id = ?",
            (WRITING, data_id, json.dumps(owners_before), utc_iso(), item.id),
        )
        self.add_event(
            item.instance_id,
            "write",
            f"adding {item.new_owner_id} to {item.customer} (dataId {data_id})",
            item.id,
        )

    def finish_item(
        self,
        item: Item,
        status: str,
        reason: str | None = None,
        *,
        suggestion: str | None = None,
        data_id: int | None = None,
        owners_after: list[str] | None = None,
    ) -> None:
        now = utc_iso()
        final = status in FINAL_ITEM
        self.db.execute(
            "UPDATE items SET status = ?, reason = ?, suggestion = ?, "
            "data_id = COALESCE(?, data_id), owners_after = COALESCE(?, owners_after), "
            "updated_at = ?, finished_at = ? WHERE id = ?",
            (
                status,
                reason,
                suggestion,
                data_id,
                json.dumps(owners_after) if owners_after is not None else None,
                now,
                now if final else None,
                item.id,
            ),
        )
        text = status + (f": {reason}" if reason else "")
        self.add_event(item.instance_id, "item", f"{item.customer} → {text}", item.id)

    def complete_requests(self) -> list[str]:
        """Move active requests whose items are all final to done; return their ids."""
        rows = self.db.execute(
            "SELECT instance_id FROM requests r WHERE state = ? AND manual = 0 AND "
            "NOT EXISTS (SELECT 1 FROM items i WHERE i.instance_id = r.instance_id "
            "AND i.status IN (?, ?))",
            (ACTIVE, PENDING, WRITING),
        ).fetchall()
        done = [row["instance_id"] for row in rows]
        for instance_id in done:
            self.set_request_state(instance_id, DONE)
        return done

    # -- comments -------------------------------------------------------------------

    def set_comment(
        self,
        instance_id: str,
        state: str,
        text: str | None = None,
        error: str | None = None,
    ) -> None:
        self.db.execute(
            "UPDATE requests SET comment_state = ?, comment_text = COALESCE(?, "
            "comment_text), comment_error = ?, comment_at = ?, updated_at = ? "
            "WHERE instance_id = ?",
            (state, text, error, utc_iso(), utc_iso(), instance_id),
        )
        if state in (COMMENT_SENT, COMMENT_FAILED):
            detail = (
                "comment posted"
                if state == COMMENT_SENT
                else f"comment failed: {error}"
            )
            self.add_event(instance_id, "comment", detail)

    def comments_due(self) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM requests WHERE comment_state IN (?, ?) ORDER BY instance_id",
            (COMMENT_DUE, COMMENT_SENDING),
        ).fetchall()

    # -- history and runs -----------------------------------------------------------

    def add_event(
        self, instance_id: str, kind: str, detail: str, item_id: int | None = None
    ) -> None:
        self.db.execute(
            "INSERT INTO events (instance_id, item_id, at, kind, detail) "
            "VALUES (?, ?, ?, ?, ?)",
            (instance_id, item_id, utc_iso(), kind, detail),
        )

    def events_of(self, instance_id: str) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM events WHERE instance_id = ? ORDER BY id", (instance_id,)
        ).fetchall()

    def start_run(self, command: str) -> int:
        cursor = self.db.execute(
            "INSERT INTO runs (command, started_at) VALUES (?, ?)", (command, utc_iso())
        )
        return int(cursor.lastrowid)

    def record_run_calls(self, run_id: int, calls: dict) -> None:
        """The calls so far, written as the run goes: a killed run still counts
        against the month's quota in ``fzr report``."""
        with self.lock:
            self._write_run(run_id, None, None, calls, None)

    def finish_run(self, run_id: int, exit_status: int, calls: dict, message: str):
        self._write_run(run_id, utc_iso(), exit_status, calls, message)

    def _write_run(self, run_id, ended_at, exit_status, calls: dict, message) -> None:
        self.db.execute(
            "UPDATE runs SET ended_at = ?, exit_status = ?, dingtalk_calls = ?, "
            "dingtalk_metered = ?, xbb_calls = ?, xbb_writes = ?, counts = ?, "
            "message = ? WHERE id = ?",
            (
                ended_at,
                exit_status,
                calls.get("dingtalk_calls", 0),
                calls.get("dingtalk_metered", 0),
                calls.get("xbb_calls", 0),
                calls.get("xbb_writes", 0),
                json.dumps(calls.get("by_api", {})),
                message,
                run_id,
            ),
        )


def json_list(raw: str | None) -> list | None:
    """A JSON-list column (suggestions, owners before/after) read back, or None."""
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, list) else None


def _refuse_foreign(db: sqlite3.Connection, path: Path) -> None:
    """Touch nothing in a file that is not fzr's: not even its journal mode."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    if tables and "requests" not in tables:
        db.close()
        raise FzrError(
            f"{path} is an SQLite file of another program; point FZR_DB at a file "
            "of fzr's own"
        )


def _item(row: sqlite3.Row) -> Item:
    before = row["owners_before"]
    return Item(
        id=row["id"],
        instance_id=row["instance_id"],
        customer=row["customer"],
        new_owner_id=row["new_owner_id"],
        status=row["status"],
        reason=row["reason"],
        suggestion=row["suggestion"],
        data_id=row["data_id"],
        owners_before=json.loads(before) if before else None,
        attempts=row["attempts"],
        manual=bool(row["manual"]),
    )


def _chunks(values: list, size: int) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _keystream(key: str, nonce: bytes, length: int) -> bytes:
    return hashlib.shake_256(b"fzr-token-cache" + nonce + key.encode()).digest(length)


def _seal(token: str, key: str) -> str:
    nonce = os.urandom(16)
    plain = token.encode()
    cipher = bytes(a ^ b for a, b in zip(plain, _keystream(key, nonce, len(plain))))
    tag = hmac.new(key.encode(), nonce + cipher, hashlib.sha256).digest()[:16]
    return base64.b64encode(nonce + tag + cipher).decode()


def _unseal(sealed: str, key: str) -> str | None:
    try:
        blob = base64.b64decode(sealed)
    except ValueError:
        return None
    nonce, tag, cipher = blob[:16], blob[16:32], blob[32:]
    expected = hmac.new(key.encode(), nonce + cipher, hashlib.sha256).digest()[:16]
    if len(blob) < 33 or not hmac.compare_digest(tag, expected):
        return None
    plain = bytes(a ^ b for a, b in zip(cipher, _keystream(key, nonce, len(cipher))))
    return plain.decode(errors="replace")
