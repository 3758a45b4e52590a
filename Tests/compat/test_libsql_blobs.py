"""Blobs through libsql 0.1.11, remote and as an embedded replica.

The Rust clients read a blob's base64 as a borrowed string: an escaped `/` (`\\/`) in the JSON
breaks them ("expected a borrowed string"). Most base64 text holds a `/`, so these blobs are chosen
to: x'0001ff' encodes as AAH/, and the random ones are kept only if theirs does.
"""
import base64
import os
import random
import tempfile

import libsql

SEED = 20261201


def blobs_with_a_slash(count):
    generator = random.Random(SEED)
    found = [b"\x00\x01\xff"]
    while len(found) < count:
        candidate = bytes(generator.getrandbits(8) for _ in range(generator.randint(1, 300)))
        if "/" in base64.b64encode(candidate).decode():
            found.append(candidate)
    return found


def test_remote_reads_return_blobs_whose_base64_holds_a_slash(database_url):
    expected = blobs_with_a_slash(50)
    conn = libsql.connect(database=database_url)
    conn.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, data BLOB)")
    for blob in expected:
        conn.execute("INSERT INTO b (data) VALUES (?)", (blob,))
    conn.commit()
    assert conn.execute("SELECT x'0001ff'").fetchone() == (b"\x00\x01\xff",)
    rows = conn.execute("SELECT data FROM b ORDER BY id").fetchall()
    assert [row[0] for row in rows] == expected
    # One at a time as well, as an application reads a row by key.
    for index, blob in enumerate(expected[:10], start=1):
        assert conn.execute("SELECT data FROM b WHERE id = ?", (index,)).fetchone() == (blob,)


def test_embedded_replica_writes_and_reads_blobs_whose_base64_holds_a_slash(database_url):
    expected = blobs_with_a_slash(30)
    directory = tempfile.mkdtemp(prefix="shoal-replica-")
    local = libsql.connect(os.path.join(directory, "local.db"), sync_url=database_url, auth_token="")
    local.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, data BLOB)")
    local.commit()
    # Written through the replica (forwarded to the primary); the answer of a RETURNING write
    # comes back as JSON from the node.
    returned = local.execute("INSERT INTO b (data) VALUES (?) RETURNING data", (expected[0],)).fetchall()
    assert returned == [(expected[0],)]
    for blob in expected[1:]:
        local.execute("INSERT INTO b (data) VALUES (?)", (blob,))
    local.commit()
    local.sync()
    rows = local.execute("SELECT data FROM b ORDER BY id").fetchall()
    assert [row[0] for row in rows] == expected
    remote = libsql.connect(database=database_url)
    assert [row[0] for row in remote.execute("SELECT data FROM b ORDER BY id").fetchall()] == expected
