"""libsql 0.1.11 in remote mode (Hrana v3 pipeline and cursor) against a live node."""
import libsql
import pytest


def test_ddl_dml_and_cursor_reads(database_url):
    conn = libsql.connect(database=database_url)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)")
    conn.execute("INSERT INTO t (name, score, data) VALUES (?, ?, ?)", ("ada", 9.5, b"\x01\x02"))
    conn.execute("INSERT INTO t (name, score, data) VALUES (?, ?, ?)", ("grace", None, None))
    conn.commit()
    rows = conn.execute("SELECT name, score, data FROM t ORDER BY id").fetchall()
    assert rows == [("ada", 9.5, b"\x01\x02"), ("grace", None, None)]


def test_transaction_across_calls_commits_and_rolls_back(database_url):
    conn = libsql.connect(database=database_url)
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.commit()
    conn.execute("INSERT INTO t VALUES (1)")
    conn.execute("INSERT INTO t VALUES (2)")
    conn.commit()
    conn.execute("INSERT INTO t VALUES (3)")
    conn.rollback()
    assert conn.execute("SELECT sum(x) FROM t").fetchone() == (3,)
    other = libsql.connect(database=database_url)
    assert other.execute("SELECT count(*) FROM t").fetchone() == (2,)


def test_errors_surface_and_the_connection_keeps_working(database_url):
    conn = libsql.connect(database=database_url)
    conn.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    conn.commit()
    with pytest.raises(Exception) as failure:
        conn.execute("SELEC 1")
    assert "syntax error" in str(failure.value)
    assert conn.execute("SELECT 41 + 1").fetchone() == (42,)
