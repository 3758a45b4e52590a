"""libsql 0.1.11 pointed at a replica node: reads there, writes forwarded to the primary node."""
import os
import tempfile

import libsql


def test_remote_mode_on_a_replica_node_writes_and_reads_its_writes(replicated_database):
    primary_url, replica_url = replicated_database
    conn = libsql.connect(database=replica_url)
    conn.execute("CREATE TABLE card (id INTEGER PRIMARY KEY, holder TEXT, score REAL, photo BLOB)")
    conn.execute("INSERT INTO card (holder, score, photo) VALUES (?, ?, ?)", ("ada", 1.5, b"\x00\xff"))
    conn.commit()
    # The write went to the primary, and the replica node answers reads with it at once.
    assert conn.execute("SELECT holder, score, photo FROM card").fetchall() == [("ada", 1.5, b"\x00\xff")]
    primary = libsql.connect(database=primary_url)
    assert primary.execute("SELECT count(*) FROM card").fetchone() == (1,)
    # A transaction across calls runs on the primary until it ends.
    conn.execute("INSERT INTO card (holder) VALUES ('grace')")
    conn.execute("INSERT INTO card (holder) VALUES ('alan')")
    conn.rollback()
    conn.execute("INSERT INTO card (holder) VALUES ('edsger')")
    conn.commit()
    assert conn.execute("SELECT holder FROM card ORDER BY id").fetchall() == [("ada",), ("edsger",)]


def test_embedded_replica_syncing_from_a_replica_node(replicated_database):
    primary_url, replica_url = replicated_database
    primary = libsql.connect(database=primary_url)
    primary.execute("CREATE TABLE t (x INTEGER)")
    primary.execute("INSERT INTO t VALUES (1)")
    primary.commit()

    directory = tempfile.mkdtemp(prefix="shoal-replica-node-")
    local = libsql.connect(os.path.join(directory, "local.db"), sync_url=replica_url, auth_token="")
    local.sync()
    assert local.execute("SELECT sum(x) FROM t").fetchone() == (1,)
    # A write through the embedded replica goes (via the replica node) to the primary.
    local.execute("INSERT INTO t VALUES (2)")
    local.commit()
    assert local.execute("SELECT sum(x) FROM t").fetchone() == (3,)
    assert primary.execute("SELECT sum(x) FROM t").fetchone() == (3,)
    # A second embedded replica of the same replica node sees it after its sync.
    other_directory = tempfile.mkdtemp(prefix="shoal-replica-node-")
    other = libsql.connect(os.path.join(other_directory, "local.db"), sync_url=replica_url, auth_token="")
    other.sync()
    assert other.execute("SELECT sum(x) FROM t").fetchone() == (3,)
