"""libsql-client 0.3.1 (HTTP API v1: /v1/execute, /v1/batch) against a live node."""
import libsql_client
import pytest


def client(database_url):
    # The trailing slash keeps the database in the path (the client joins URLs with urljoin).
    return libsql_client.create_client_sync(database_url + "/")


def test_execute_with_every_value_type(database_url):
    c = client(database_url)
    c.execute("CREATE TABLE v (i INTEGER, f REAL, t TEXT, b BLOB, n)")
    big = 2**63 - 1
    c.execute("INSERT INTO v VALUES (?, ?, ?, ?, ?)", [big, 3.25, "zürich 🦈", b"\x00\xff\x10", None])
    c.execute("INSERT INTO v VALUES (?, ?, ?, ?, ?)", [-(2**63), -0.5, "", b"", None])
    rs = c.execute("SELECT i, f, t, b, n FROM v ORDER BY i DESC")
    assert rs.columns == ("i", "f", "t", "b", "n")
    assert [tuple(r) for r in rs.rows] == [
        (big, 3.25, "zürich 🦈", b"\x00\xff\x10", None),
        (-(2**63), -0.5, "", b"", None),
    ]
    c.close()


def test_positional_and_named_arguments(database_url):
    c = client(database_url)
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    inserted = c.execute("INSERT INTO t (name) VALUES (?)", ["ada"])
    assert inserted.rows_affected == 1
    assert inserted.last_insert_rowid == 1
    c.execute("INSERT INTO t (name) VALUES (:name)", {":name": "grace"})
    c.execute("INSERT INTO t (name) VALUES (@name)", {"@name": "linus"})
    rows = c.execute("SELECT name FROM t WHERE id > :min ORDER BY id", {":min": 1}).rows
    assert [r[0] for r in rows] == ["grace", "linus"]
    c.close()


def test_batch_is_atomic_and_reports_each_result(database_url):
    c = client(database_url)
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
    results = c.batch(["INSERT INTO t (name) VALUES ('a')", ("INSERT INTO t (name) VALUES (?)", ["b"])])
    assert len(results) == 2
    assert results[1].last_insert_rowid == 2
    with pytest.raises(libsql_client.LibsqlError) as failure:
        c.batch(["INSERT INTO t (name) VALUES ('c')", "INSERT INTO t (name) VALUES ('a')"])
    assert failure.value.code == "SQLITE_CONSTRAINT"
    # The failed batch rolled back: 'c' is not there.
    assert [r[0] for r in c.execute("SELECT name FROM t ORDER BY id").rows] == ["a", "b"]
    c.close()


def test_errors_carry_codes(database_url):
    c = client(database_url)
    with pytest.raises(libsql_client.LibsqlError) as syntax:
        c.execute("SELEC 1")
    assert syntax.value.code == "SQLITE_ERROR"
    with pytest.raises(libsql_client.LibsqlError) as attach:
        c.execute("ATTACH '/etc/passwd' AS p")
    assert attach.value.code == "SQLITE_AUTH"
    with pytest.raises(libsql_client.LibsqlError) as vacuum:
        c.execute("VACUUM INTO '/tmp/shoal-compat-copy.db'")
    assert vacuum.value.code == "SQLITE_AUTH"
    assert c.execute("SELECT 1").rows[0][0] == 1
    c.close()
