"""SQLite's writers take turns on a flock beside the database (worker/store/db.py): a writer
waits for the one in its transaction without polling, and never fails for a busy database."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from worker.store.db import make_engine, reader_factory, session_factory


def test_a_second_writer_waits_for_the_first_to_commit_and_readers_do_not(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    writers, readers = session_factory(engine), reader_factory(engine)
    order: list[str] = []
    inside = threading.Event()

    def first() -> None:
        with writers() as s, s.begin():
            s.execute(text("INSERT INTO t VALUES (1)"))
            inside.set()
            with readers() as r:  # a reader is not held up by the writer
                order.append(f"read {r.execute(text('SELECT count(*) FROM t')).scalar()}")
            time.sleep(0.3)
            order.append("first commits")

    def second() -> None:
        inside.wait(10)
        with writers() as s, s.begin():
            s.execute(text("INSERT INTO t VALUES (2)"))  # the transaction begins here
            order.append("second writes")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert order == ["read 0", "first commits", "second writes"]
    assert (tmp_path / "w.db.writer.lock").exists()
    with writers() as s, s.begin():  # the lock was given back after each transaction
        assert s.execute(text("SELECT count(*) FROM t")).scalar() == 2
    engine.dispose()


def test_a_rolled_back_writer_gives_the_lock_back(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    sessions = session_factory(engine)
    try:
        with sessions() as s, s.begin():
            s.execute(text("CREATE TABLE t (n INTEGER)"))
            raise RuntimeError("abandoned")
    except RuntimeError:
        pass
    done = threading.Event()

    def write() -> None:
        with sessions() as s, s.begin():
            s.execute(text("CREATE TABLE u (n INTEGER)"))
        done.set()

    threading.Thread(target=write, daemon=True).start()
    assert done.wait(10)
    engine.dispose()
