"""Turso Sync through pyturso 0.8.3 (`turso.sync`, `turso.aio.sync`, the `sqlite+turso_sync`
SQLAlchemy dialect): bootstrap and pull over `POST /pull-updates`, push of local writes through
`/v2/pipeline`, against a live node; on the primary and on a replica node."""
import asyncio
import json
import os
import re
import tempfile
import threading
import urllib.request

import sqlalchemy
import turso.aio.sync
import turso.sync
from turso.sqlalchemy import get_sync_connection


def remote(url, sql, args=()):
    """Runs one statement on the database through the node's HTTP API; returns its rows."""
    stmt = {"sql": sql, "args": [{"type": "text", "value": str(a)} for a in args]}
    body = json.dumps({"requests": [{"type": "execute", "stmt": stmt}, {"type": "close"}]}).encode()
    request = urllib.request.Request(f"{url}/v2/pipeline", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        result = json.load(answer)["results"][0]
    assert result["type"] == "ok", result
    rows = result["response"]["result"]["rows"]
    return [tuple(cell.get("value") for cell in row) for row in rows]


def local_path():
    return os.path.join(tempfile.mkdtemp(prefix="shoal-turso-"), "local.db")


def test_bootstrap_pull_push_and_checkpoint(database_url):
    remote(database_url, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    remote(database_url, "INSERT INTO t (v) VALUES ('a'), ('b')")
    conn = turso.sync.connect(local_path(), database_url)
    assert conn.execute("SELECT id, v FROM t ORDER BY id").fetchall() == [(1, "a"), (2, "b")]
    assert conn.pull() is False  # nothing new

    remote(database_url, "INSERT INTO t (v) VALUES ('c')")
    assert conn.pull() is True
    assert conn.execute("SELECT v FROM t ORDER BY id").fetchall() == [("a",), ("b",), ("c",)]

    # A write while nothing talks to the server, pushed later.
    conn.execute("INSERT INTO t (v) VALUES ('local')")
    conn.commit()
    assert remote(database_url, "SELECT count(*) FROM t WHERE v = 'local'") == [("0",)]
    conn.push()
    assert remote(database_url, "SELECT v FROM t ORDER BY id") == [("a",), ("b",), ("c",), ("local",)]
    conn.pull()
    conn.checkpoint()
    assert conn.execute("SELECT count(*) FROM t").fetchall() == [(4,)]
    assert conn.stats().revision.startswith("shoal-")
    conn.close()


def test_two_replicas_writing_the_same_row_converge(database_url):
    remote(database_url, "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)")
    remote(database_url, "INSERT INTO kv VALUES ('x', 'start')")
    first = turso.sync.connect(local_path(), database_url)
    second = turso.sync.connect(local_path(), database_url)
    first.execute("UPDATE kv SET v = 'first' WHERE k = 'x'")
    first.commit()
    second.execute("UPDATE kv SET v = 'second' WHERE k = 'x'")
    second.commit()
    first.push()
    second.push()  # Turso Sync's rule: the later push wins the row
    for conn in (first, second):
        conn.pull()
    assert remote(database_url, "SELECT v FROM kv") == [("second",)]
    assert first.execute("SELECT v FROM kv").fetchall() == [("second",)]
    assert second.execute("SELECT v FROM kv").fetchall() == [("second",)]


def test_a_long_poll_pull_returns_the_write_it_waited_for(database_url, node_url):
    remote(database_url, "CREATE TABLE t (x INTEGER)")
    conn = turso.sync.connect(local_path(), database_url, long_poll_timeout_ms=20_000)
    outcome = {}

    def polls_held():
        with urllib.request.urlopen(f"{node_url}/metrics") as answer:
            return int(re.search(r"^shoal_node_long_polls_held (\d+)", answer.read().decode(), re.M).group(1))

    before = polls_held()  # replica nodes of other tests may hold some

    def pull():
        outcome["pulled"] = conn.pull()

    puller = threading.Thread(target=pull)
    puller.start()
    # Write once the node holds the poll (its metrics count it), not after a guessed delay.
    for _ in range(2000):
        if polls_held() > before:
            break
    else:
        raise AssertionError("the pull never waited on the node")
    remote(database_url, "INSERT INTO t VALUES (42)")
    puller.join(timeout=30)
    assert not puller.is_alive()
    assert outcome["pulled"] is True
    assert conn.execute("SELECT x FROM t").fetchall() == [(42,)]


def test_asyncio_sync_connection(database_url):
    remote(database_url, "CREATE TABLE t (x TEXT)")
    remote(database_url, "INSERT INTO t VALUES ('remote')")

    async def flow():
        conn = await turso.aio.sync.connect(local_path(), database_url)
        cursor = await conn.execute("SELECT x FROM t")
        assert await cursor.fetchall() == [("remote",)]
        await conn.execute("INSERT INTO t VALUES ('async')")
        await conn.commit()
        await conn.push()
        remote(database_url, "INSERT INTO t VALUES ('after')")
        assert await conn.pull() is True
        cursor = await conn.execute("SELECT x FROM t ORDER BY rowid")
        rows = await cursor.fetchall()
        await conn.close()
        return rows

    assert asyncio.run(flow()) == [("remote",), ("async",), ("after",)]


def test_sqlalchemy_turso_sync_dialect(database_url):
    remote(database_url, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    remote(database_url, "INSERT INTO items (name) VALUES ('from the server')")
    engine = sqlalchemy.create_engine(f"sqlite+turso_sync:///{local_path()}", connect_args={"remote_url": database_url})
    with engine.connect() as connection:
        rows = connection.execute(sqlalchemy.text("SELECT name FROM items")).fetchall()
        assert [tuple(row) for row in rows] == [("from the server",)]
        connection.execute(sqlalchemy.text("INSERT INTO items (name) VALUES ('from sqlalchemy')"))
        connection.commit()
        get_sync_connection(connection).push()
    assert remote(database_url, "SELECT name FROM items ORDER BY id") == [("from the server",), ("from sqlalchemy",)]
    engine.dispose()


def test_pull_from_a_replica_node_push_through_it(replicated_database):
    primary, replica = replicated_database
    remote(primary, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    remote(primary, "INSERT INTO t (v) VALUES ('on the primary')")
    conn = turso.sync.connect(local_path(), replica, long_poll_timeout_ms=10_000)
    assert conn.execute("SELECT v FROM t").fetchall() == [("on the primary",)]
    conn.execute("INSERT INTO t (v) VALUES ('pushed to the replica node')")
    conn.commit()
    conn.push()  # the replica node forwards the writes to the primary
    assert remote(primary, "SELECT v FROM t ORDER BY id") == [("on the primary",), ("pushed to the replica node",)]
    remote(primary, "INSERT INTO t (v) VALUES ('later')")
    # The replica node answers pulls from what it has applied (it follows the primary); a pull
    # long-polls until the replica node has applied something new.
    for _ in range(5):
        conn.pull()
        if conn.execute("SELECT count(*) FROM t").fetchall() == [(3,)]:
            break
    assert conn.execute("SELECT v FROM t ORDER BY id").fetchall() == [
        ("on the primary",),
        ("pushed to the replica node",),
        ("later",),
    ]
