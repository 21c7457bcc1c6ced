"""api client scopes, tenant restriction, key expiry and rotation overlap; the registering client on tenants

Clients that exist before this revision were all-powerful; they keep every scope so no integration breaks on
upgrade (an administrator narrows them by creating a scoped client and revoking the old one). New clients
default to read only.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:36:47.265857

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

EVERY_SCOPE = "read register update secrets keys validate decommission"


def upgrade():
    with op.batch_alter_table('api_client', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scopes', sa.String(length=128), server_default='read', nullable=False))
        batch_op.add_column(sa.Column('tenant_scope', sa.String(length=16), server_default='all', nullable=False))
        batch_op.add_column(sa.Column('tenant_pattern', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('key_rotated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('previous_key_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('previous_key_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_check_constraint(op.f('ck_api_client_tenant_scope'), "tenant_scope IN ('all', 'own', 'pattern')")
    op.execute(sa.text("UPDATE api_client SET scopes = :all").bindparams(all=EVERY_SCOPE))

    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('registered_by_client_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_tenant_registered_by_client_id'), ['registered_by_client_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_tenant_registered_by_client_id_api_client'), 'api_client', ['registered_by_client_id'], ['id'], ondelete='SET NULL')


def downgrade():
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_tenant_registered_by_client_id_api_client'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_tenant_registered_by_client_id'))
        batch_op.drop_column('registered_by_client_id')

    with op.batch_alter_table('api_client', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_api_client_tenant_scope'), type_='check')
        batch_op.drop_column('previous_key_expires_at')
        batch_op.drop_column('previous_key_hash')
        batch_op.drop_column('key_rotated_at')
        batch_op.drop_column('expires_at')
        batch_op.drop_column('tenant_pattern')
        batch_op.drop_column('tenant_scope')
        batch_op.drop_column('scopes')
