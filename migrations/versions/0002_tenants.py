"""tenants, signing keys, API clients, bulk jobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 06:49:50.959087

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():

    op.create_table('api_client',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('app_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_client')),
    sa.UniqueConstraint('app_id', name=op.f('uq_api_client_app_id'))
    )
    op.create_table('bulk_job',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('file_format', sa.String(length=8), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('check_connections', sa.Boolean(), nullable=False),
    sa.Column('source_job_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('rows', sa.Text(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('processed', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('conflicts', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('report', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'running', 'done', 'failed')", name=op.f('ck_bulk_job_status')),
    sa.ForeignKeyConstraint(['source_job_id'], ['bulk_job.id'], name=op.f('fk_bulk_job_source_job_id_bulk_job'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_job'))
    )
    op.create_table('tenant',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('tenant_key', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=False),
    sa.Column('name_key', sa.String(length=255), nullable=False),
    sa.Column('domain', sa.String(length=253), nullable=False),
    sa.Column('owner_username', sa.String(length=255), nullable=True),
    sa.Column('owner_email', sa.String(length=320), nullable=True),
    sa.Column('owner_first_name', sa.String(length=255), nullable=True),
    sa.Column('owner_last_name', sa.String(length=255), nullable=True),
    sa.Column('owner_provisioning', sa.String(length=32), nullable=True),
    sa.Column('owner_password', sa.Text(), nullable=True),
    sa.Column('client_id', sa.String(length=255), nullable=False),
    sa.Column('client_secret', sa.Text(), nullable=False),
    sa.Column('idp_type', sa.String(length=16), nullable=False),
    sa.Column('idp_settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('idp_secret', sa.Text(), nullable=True),
    sa.Column('support_algorithm', sa.String(length=8), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('check_status', sa.String(length=16), nullable=False),
    sa.Column('check_summary', sa.Text(), nullable=True),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("check_status IN ('unchecked', 'passed', 'failed')", name=op.f('ck_tenant_check_status')),
    sa.CheckConstraint("idp_type IN ('ORACLE', 'POSTGRES', 'LDAP', 'EXTERNAL')", name=op.f('ck_tenant_idp_type')),
    sa.CheckConstraint("support_algorithm IN ('HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512')", name=op.f('ck_tenant_support_algorithm')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tenant')),
    sa.UniqueConstraint('domain', name=op.f('uq_tenant_domain')),
    sa.UniqueConstraint('tenant_key', name=op.f('uq_tenant_tenant_key'))
    )
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.create_index('ix_tenant_active_key', ['active', 'tenant_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_tenant_client_id'), ['client_id'], unique=False)
        batch_op.create_index('ix_tenant_domain_pattern', ['domain'], unique=False, postgresql_ops={'domain': 'varchar_pattern_ops'})
        batch_op.create_index('ix_tenant_idp_type_key', ['idp_type', 'tenant_key'], unique=False)
        batch_op.create_index('ix_tenant_key_pattern', ['tenant_key'], unique=False, postgresql_ops={'tenant_key': 'varchar_pattern_ops'})
        batch_op.create_index('ix_tenant_name_key_pattern', ['name_key'], unique=False, postgresql_ops={'name_key': 'varchar_pattern_ops'})

    op.create_table('signing_key',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('algorithm', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('public_pem', sa.Text(), nullable=True),
    sa.Column('key_bits', sa.Integer(), nullable=False),
    sa.Column('generated', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("algorithm IN ('HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512')", name=op.f('ck_signing_key_algorithm')),
    sa.CheckConstraint("status IN ('active', 'passive', 'retired')", name=op.f('ck_signing_key_status')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_signing_key_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_signing_key')),
    sa.UniqueConstraint('tenant_id', 'kid', name='uq_signing_key_tenant_kid')
    )
    with op.batch_alter_table('signing_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signing_key_tenant_id'), ['tenant_id'], unique=False)




def downgrade():

    with op.batch_alter_table('signing_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signing_key_tenant_id'))

    op.drop_table('signing_key')
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.drop_index('ix_tenant_name_key_pattern', postgresql_ops={'name_key': 'varchar_pattern_ops'})
        batch_op.drop_index('ix_tenant_key_pattern', postgresql_ops={'tenant_key': 'varchar_pattern_ops'})
        batch_op.drop_index('ix_tenant_idp_type_key')
        batch_op.drop_index('ix_tenant_domain_pattern', postgresql_ops={'domain': 'varchar_pattern_ops'})
        batch_op.drop_index(batch_op.f('ix_tenant_client_id'))
        batch_op.drop_index('ix_tenant_active_key')

    op.drop_table('tenant')
    op.drop_table('bulk_job')
    op.drop_table('api_client')

