"""tenant.user_store: a relational tenant's user store (server, database, schema) as an indexed key

Two tenants on one user-store schema are warned about, and refused with the same credentials
(services/tenants/schema_sharing.py); the key lets the portal find them with one index lookup. Existing relational
tenants get their key here, computed by the same pure function the portal uses (it parses the JDBC URL only).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 13:15:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

RELATIONAL = ("POSTGRES", "ORACLE")


def upgrade():
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user_store', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_tenant_user_store'), ['user_store'], unique=False)

    from portal.services.tenants.schema_sharing import store_key  # pure: parses the JDBC URL, no app needed

    tenant = sa.table('tenant', sa.column('id', sa.Integer), sa.column('idp_type', sa.String),
                      sa.column('idp_settings', sa.JSON), sa.column('user_store', sa.String))
    bind = op.get_bind()
    rows = bind.execute(sa.select(tenant.c.id, tenant.c.idp_type, tenant.c.idp_settings)
                        .where(tenant.c.idp_type.in_(RELATIONAL))).all()
    updates = [{"pk": pk, "key": key} for pk, idp_type, settings in rows
               if (key := store_key(idp_type, settings if isinstance(settings, dict) else None))]
    if updates:
        bind.execute(tenant.update().where(tenant.c.id == sa.bindparam("pk")).values(user_store=sa.bindparam("key")),
                     updates)


def downgrade():
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tenant_user_store'))
        batch_op.drop_column('user_store')
