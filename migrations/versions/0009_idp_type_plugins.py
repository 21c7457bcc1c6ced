"""identity-provider types are plug-ins: the tenant's idp_type is no longer limited by a CHECK constraint

The registry of identity-provider families (portal/idp/registry.py) decides which types exist; the database only
requires a type name. Downgrading restores the CHECK, which fails while a tenant has a type outside the four
built-in ones (move or remove such tenants first).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 09:40:00.000000

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

BUILT_IN_TYPES = "idp_type IN ('ORACLE', 'POSTGRES', 'LDAP', 'EXTERNAL')"


def upgrade():
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_tenant_idp_type'), type_='check')


def downgrade():
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.create_check_constraint(op.f('ck_tenant_idp_type'), BUILT_IN_TYPES)
