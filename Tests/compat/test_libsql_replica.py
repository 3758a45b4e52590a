"""libsql 0.1.11 embedded replicas (sync protocol + forwarded writes) against a live node."""
import os
import tempfile

import libsql


def replica(database_url):
    directory = tempfile.mkdtemp(prefix="shoal-replica-")
    return libsql.connect(os.path.join(directory, "local.db"), sync_url=database_url, auth_token="")


def test_bootstrap_sync_local_reads_and_forwarded_writes(database_url):
    remote = libsql.connect(database=database_url)
    remote.execute("CREATE TABLE card (id INTEGER PRIMARY KEY, holder TEXT, valid INTEGER)")
    remote.execute("INSERT INTO card (holder, valid) VALUES ('ada', 1)")
    remote.commit()

    first = replica(database_url)
    first.sync()
    assert first.execute("SELECT holder, valid FROM card").fetchall() == [("ada", 1)]

    # A write through the replica goes to the node and is visible to it at once (read-your-writes).
    first.execute("INSERT INTO card (holder, valid) VALUES ('grace', 1)")
    first.commit()
    assert first.execute("SELECT count(*) FROM card").fetchone() == (2,)
    assert remote.execute("SELECT count(*) FROM card").fetchone() == (2,)

    # A second replica sees the write after its own sync.
    second = replica(database_url)
    second.sync()
    assert second.execute("SELECT holder FROM card ORDER BY id").fetchall() == [("ada",), ("grace",)]

    # Writes made elsewhere arrive with the next sync.
    remote.execute("UPDATE card SET valid = 0 WHERE holder = 'ada'")
    remote.commit()
    assert second.execute("SELECT valid FROM card WHERE holder = 'ada'").fetchone() == (1,)
    second.sync()
    assert second.execute("SELECT valid FROM card WHERE holder = 'ada'").fetchone() == (0,)


def test_replica_follows_a_generation_roll(database_url, node_url):
    import urllib.request

    remote = libsql.connect(database=database_url)
    remote.execute("CREATE TABLE t (x INTEGER)")
    remote.execute("INSERT INTO t VALUES (1)")
    remote.commit()
    local = replica(database_url)
    local.sync()
    assert local.execute("SELECT sum(x) FROM t").fetchone() == (1,)

    name = database_url.rsplit("/", 2)
    roll = urllib.request.Request(f"{node_url}/v1/namespaces/{name[1]}/{name[2]}/checkpoint", method="POST")
    with urllib.request.urlopen(roll) as answer:
        assert b'"rolled":true' in answer.read()

    remote.execute("INSERT INTO t VALUES (2)")
    remote.commit()
    local.sync()
    assert local.execute("SELECT sum(x) FROM t").fetchone() == (3,)
    fresh = replica(database_url)
    fresh.sync()
    assert fresh.execute("SELECT sum(x) FROM t").fetchone() == (3,)
