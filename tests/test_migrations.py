"""The schema comes from the migrations alone, and matches the models on SQLite and PostgreSQL."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from portal.models import Base


def test_migrations_build_the_schema_the_models_describe(db):
    # The session fixture ran `flask db upgrade` on an empty database of this run's backend.
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert context.get_current_revision() is not None
        diffs = compare_metadata(context, Base.metadata)
    assert diffs == [], f"models and migrations disagree on {db.engine.dialect.name}: {diffs}"


def test_upgrade_is_a_no_op_when_current(app, db):
    import flask_migrate

    with db.engine.connect() as conn:
        before = MigrationContext.configure(conn).get_current_revision()
    flask_migrate.upgrade()
    with db.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == before
