"""libsql-client 0.3.1 over WebSocket (`ws://` URLs: Hrana over WebSocket, subprotocol hrana2)."""
import libsql_client
import pytest


def ws(url):
    return url.replace("http://", "ws://", 1)


def test_values_arguments_and_batches_over_websocket(database_url):
    with libsql_client.create_client_sync(ws(database_url)) as c:
        c.execute("CREATE TABLE v (i INTEGER, f REAL, t TEXT, b BLOB, n)")
        big = 2**63 - 1
        c.execute("INSERT INTO v VALUES (?, ?, ?, ?, ?)", [big, 3.25, "zürich 🦈", b"\x00\xff/\x10", None])
        c.execute("INSERT INTO v VALUES (:i, :f, :t, :b, :n)", {"i": -(2**63), "f": -0.5, "t": "", "b": b"", "n": None})
        rs = c.execute("SELECT i, f, t, b, n FROM v ORDER BY i DESC")
        assert rs.columns == ("i", "f", "t", "b", "n")
        assert [tuple(r) for r in rs.rows] == [
            (big, 3.25, "zürich 🦈", b"\x00\xff/\x10", None),
            (-(2**63), -0.5, "", b"", None),
        ]
        results = c.batch(["INSERT INTO v (i) VALUES (1)", "SELECT count(*) FROM v"])
        assert results[1].rows[0][0] == 3
        with pytest.raises(libsql_client.LibsqlError):
            c.batch(["INSERT INTO v (i) VALUES (2)", "SELEC nonsense"])
        # The failed batch was atomic.
        assert c.execute("SELECT count(*) FROM v").rows[0][0] == 3


def test_interactive_transaction_over_websocket(database_url):
    with libsql_client.create_client_sync(ws(database_url)) as c:
        c.execute("CREATE TABLE t (x)")
        tx = c.transaction()
        tx.execute("INSERT INTO t VALUES (1)")
        assert tx.execute("SELECT count(*) FROM t").rows[0][0] == 1
        tx.rollback()
        assert c.execute("SELECT count(*) FROM t").rows[0][0] == 0
        tx = c.transaction()
        tx.execute("INSERT INTO t VALUES (2)")
        tx.commit()
        assert c.execute("SELECT x FROM t").rows[0][0] == 2


def test_errors_over_websocket_keep_the_connection_usable(database_url):
    with libsql_client.create_client_sync(ws(database_url)) as c:
        with pytest.raises(libsql_client.LibsqlError) as failure:
            c.execute("SELEC 1")
        assert "syntax" in str(failure.value)
        assert c.execute("SELECT 41 + 1").rows[0][0] == 42


def test_websocket_on_a_replica_node_forwards_writes(replicated_database):
    primary, replica = replicated_database
    with libsql_client.create_client_sync(ws(primary)) as c:
        c.execute("CREATE TABLE t (x)")
    with libsql_client.create_client_sync(ws(replica)) as c:
        c.execute("INSERT INTO t VALUES (7)")
        assert c.execute("SELECT x FROM t").rows[0][0] == 7
    with libsql_client.create_client_sync(ws(primary)) as c:
        assert c.execute("SELECT x FROM t").rows[0][0] == 7
