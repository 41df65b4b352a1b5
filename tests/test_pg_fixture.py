"""The ``postgres_url`` fixture gives a real, shared PostgreSQL database.

Optuna's hyper-parameter tuning runs several worker processes on one study stored in
PostgreSQL; these tests prove the storage underneath: separate connections and separate
processes see each other's committed writes, and two Optuna workers share one study.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import sqlalchemy as sa

WORKERS_TIMEOUT_S = 60

# Each writer announces itself, waits until both are connected, then writes its rows: the
# two processes provably hold connections to the database at the same time.
WRITER = """
import sys, time, psycopg2
dsn, worker, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = psycopg2.connect(dsn)
conn.autocommit = True
cur = conn.cursor()
cur.execute("INSERT INTO writers VALUES (%s)", (worker,))
deadline = time.monotonic() + 30
while cur.execute("SELECT count(*) FROM writers") or cur.fetchone()[0] < 2:
    if time.monotonic() > deadline:
        sys.exit("the other writer never connected")
    time.sleep(0.01)
conn.autocommit = False
for i in range(n):
    cur.execute("INSERT INTO writes VALUES (%s, %s)", (worker, i))
conn.commit()
conn.close()
"""

OPTUNA_WORKER = """
import sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
url, worker, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
study = optuna.create_study(storage=url, study_name="shared-quadratic", load_if_exists=True,
                            sampler=optuna.samplers.RandomSampler(seed=worker))

def objective(trial):
    trial.set_user_attr("worker", worker)
    return (trial.suggest_float("x", -10, 10) - 2) ** 2

study.optimize(objective, n_trials=n)
"""


def run_in_parallel(script: str, argvs: list[list[str]]) -> None:
    """Run ``python -c script`` once per argv, all at once; fail with stderr if any fails."""
    procs = [subprocess.Popen([sys.executable, "-c", script, *argv], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for argv in argvs]
    try:
        outputs = [proc.communicate(timeout=WORKERS_TIMEOUT_S) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()  # a no-op for the finished ones; the rest must not outlive the server
            proc.wait()
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, f"worker {proc.args[3:]} failed:\n{out}{err}"


def test_rows_from_two_connections(postgres_url):
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE pairs (k text PRIMARY KEY, v integer)"))
        with engine.connect() as first, engine.connect() as second:
            pids = {c.execute(sa.text("SELECT pg_backend_pid()")).scalar() for c in (first, second)}
            assert len(pids) == 2  # two server backends: really two connections
            first.execute(sa.text("INSERT INTO pairs VALUES ('a', 1), ('b', 2)"))
            second.execute(sa.text("INSERT INTO pairs VALUES ('c', 3)"))
            first.commit()
            second.commit()
            seen_by_first = first.execute(sa.text("SELECT k, v FROM pairs ORDER BY k")).all()
            seen_by_second = second.execute(sa.text("SELECT k, v FROM pairs ORDER BY k")).all()
        assert seen_by_first == seen_by_second == [("a", 1), ("b", 2), ("c", 3)]
    finally:
        engine.dispose()


def test_two_processes_write_concurrently(postgres_url):
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE writers (worker text PRIMARY KEY)"))
            conn.execute(sa.text("CREATE TABLE writes (worker text, i integer)"))
        dsn = postgres_url.replace("postgresql+psycopg2://", "postgresql://")
        run_in_parallel(WRITER, [[dsn, "p0", "50"], [dsn, "p1", "70"]])
        with engine.connect() as conn:
            counts = dict(conn.execute(
                sa.text("SELECT worker, count(*) FROM writes GROUP BY worker")).all())
            distinct = conn.execute(
                sa.text("SELECT count(DISTINCT (worker, i)) FROM writes")).scalar()
        assert counts == {"p0": 50, "p1": 70}
        assert distinct == 120
    finally:
        engine.dispose()


def test_two_optuna_workers_share_one_study(postgres_url):
    import optuna

    n_trials = 8
    # The schema first, as the tuner must: RDBStorage creates Optuna's tables, and two workers
    # doing that at once race in PostgreSQL's catalog ("duplicate key value violates unique
    # constraint pg_type_typname_nsp_index", optuna/optuna#1092). Racing on create_study
    # itself is safe: the loser gets DuplicatedStudyError and, with load_if_exists, loads it.
    storage = optuna.storages.RDBStorage(postgres_url)
    try:
        run_in_parallel(OPTUNA_WORKER, [[postgres_url, "0", str(n_trials)],
                                        [postgres_url, "1", str(n_trials)]])
        study = optuna.load_study(study_name="shared-quadratic", storage=storage)
        trials = study.get_trials(deepcopy=False)
        assert len(trials) == 2 * n_trials
        assert Counter(t.user_attrs["worker"] for t in trials) == {0: n_trials, 1: n_trials}
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        assert [t.value for t in trials] == [(t.params["x"] - 2) ** 2 for t in trials]
        assert sorted(t.number for t in trials) == list(range(2 * n_trials))
    finally:
        storage.engine.dispose()
