"""Eight workers started together on a fresh database (issue 15, item 4).

What a SLURM array does: every worker opens the storage at the same moment, and every one
of them finds no tables and creates them. All but one lose that race (PostgreSQL: a
unique violation on ``CREATE TYPE studydirection``; SQLite: ``table ... already exists``)
and used to die, with an error that blamed a missing ``postgres`` extra. Opening now
retries the race, and the study finishes with every configuration evaluated exactly once.
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from optuna.trial import TrialState
from tests.workers.workers_helpers import Workspace, all_configs, config_of, config_text, read_trials, wait_all

from bitscout.study._worker_storage import CREATION_ATTEMPTS, _open_failure

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # a hang; not the machine's load

WORKERS = 8
WIDTHS = {"fc1": (2, 4), "fc2": (2, 4, 8), "fc3": (4, 8)}  # 12 configurations


@pytest.fixture
def fresh_postgres(postgres_url):
    """A new, empty database on the test server (dropped afterwards)."""
    import psycopg2

    name = f"fresh_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _run_together(tmp_path, url: str) -> None:
    ws = Workspace(tmp_path)
    name = "together"
    config = ws.write_config(
        "c.toml", config_text(project="together", strategy="brute_force", n_trials=1000, widths=WIDTHS)
    )
    procs = [
        ws.start(
            ["search", str(config), "--storage", url, "--study-name", name, "--out", str(tmp_path / f"run{i}"),
             "--no-progress"],
            f"worker{i}",
        )
        for i in range(WORKERS)
    ]
    # Every worker is held after tracing its model, before it opens the storage: they
    # open the fresh database at the same moment.
    ws.open_gate_when_ready(WORKERS, procs)
    codes = wait_all(procs)
    logs = "\n".join(f"--- worker{i}\n{ws.log(f'worker{i}')[-2000:]}" for i in range(WORKERS))
    assert codes == [0] * WORKERS, logs
    trials = read_trials(url, name)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * len(trials)
    evaluated = Counter(config_of(t) for t in trials)
    assert set(evaluated) == all_configs(WIDTHS) and set(evaluated.values()) == {1}, evaluated


@pytest.mark.postgres
def test_eight_workers_on_a_fresh_postgresql_database_evaluate_each_configuration_once(
    fresh_postgres, tmp_path
) -> None:
    _run_together(tmp_path, fresh_postgres)


def test_eight_workers_on_a_fresh_sqlite_database_evaluate_each_configuration_once(tmp_path) -> None:
    _run_together(tmp_path, f"sqlite:///{tmp_path / 'fresh.db'}")


def test_a_lost_creation_race_is_not_blamed_on_a_missing_package() -> None:
    race = RuntimeError(
        '(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint '
        '"pg_type_typname_nsp_index"\nDETAIL:  Key (typname, typnamespace)=(studydirection, 2200) already exists.'
    )
    message = _open_failure("postgresql://bob:secret@db/s", race, CREATION_ATTEMPTS)
    assert message == (
        "the study storage 'postgresql://bob:***@db/s' cannot be opened: workers creating its "
        f"tables at the same time still collided after {CREATION_ATTEMPTS} tries ((psycopg2.errors."
        'UniqueViolation) duplicate key value violates unique constraint "pg_type_typname_nsp_index"); '
        "start the workers again (the tables exist by now)"
    )
    missing = ModuleNotFoundError("No module named 'psycopg2'")
    assert "pip install 'bitscout[postgres]'" in _open_failure("postgresql://db/s", missing, 1)
