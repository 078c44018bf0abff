"""Migrations go up, down and up again on a real PostgreSQL."""

from pathlib import Path

import psycopg2

from relay.storage import migrations


def _tables(url: str) -> set[str]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename NOT LIKE '%yoyo%'"
            )
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


SCHEMA = {"accounts", "esp_providers", "routing_rules", "messages", "delivery_logs", "admin_keys"}


def test_up_down_up(empty_database_url: str) -> None:
    assert [s.applied for s in migrations.status(empty_database_url)] == [False] * len(
        migrations.status(empty_database_url)
    )
    applied = migrations.apply(empty_database_url)
    assert applied and applied[0] == "0001.initial-schema"
    assert SCHEMA <= _tables(empty_database_url)
    assert all(s.applied for s in migrations.status(empty_database_url))

    undone = migrations.rollback(empty_database_url, count=len(applied))
    assert undone == list(reversed(applied))
    assert not (SCHEMA & _tables(empty_database_url))

    assert migrations.apply(empty_database_url) == applied
    assert SCHEMA <= _tables(empty_database_url)


def test_apply_twice_applies_nothing(empty_database_url: str) -> None:
    migrations.apply(empty_database_url)
    assert migrations.apply(empty_database_url) == []


def test_every_migration_has_a_rollback() -> None:
    forward = sorted(
        p for p in migrations.MIGRATIONS_DIR.glob("*.sql") if not p.name.endswith(".rollback.sql")
    )
    assert forward
    for path in forward:
        assert path.with_name(path.stem + ".rollback.sql").exists(), path.name


def test_an_installed_relay_finds_its_migrations_under_the_prefix(tmp_path: Path) -> None:
    """Without a checkout's sql/ beside the package (a wheel install), the copy that
    setup.cfg's data_files installed under sys.prefix is used."""
    checkout, installed = tmp_path / "checkout", tmp_path / "prefix"
    (installed / migrations.INSTALLED_SQL).mkdir(parents=True)
    assert migrations.find_migrations_dir(checkout, installed) == installed / migrations.INSTALLED_SQL
    (checkout / "sql").mkdir(parents=True)
    assert migrations.find_migrations_dir(checkout, installed) == checkout / "sql"


def test_every_migration_is_installed_with_the_package() -> None:
    import configparser

    setup = configparser.ConfigParser()
    setup.read(migrations.PROJECT_ROOT / "setup.cfg")
    assert setup["options.data_files"]["share/relay/sql"].strip() == "sql/*.sql"
