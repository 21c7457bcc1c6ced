"""product connections and sharing settings

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 07:48:49.687218

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('product_connection',
    sa.Column('product', sa.String(length=8), nullable=False),
    sa.Column('base_url', sa.String(length=2048), nullable=False),
    sa.Column('auth', sa.String(length=8), nullable=False),
    sa.Column('username', sa.String(length=255), nullable=False),
    sa.Column('password', sa.Text(), nullable=True),
    sa.Column('identity_user', sa.String(length=255), nullable=False),
    sa.Column('trust_roles', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('connect_timeout', sa.Float(), nullable=False),
    sa.Column('read_timeout', sa.Float(), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("auth IN ('mtls', 'basic')", name=op.f('ck_product_connection_auth')),
    sa.CheckConstraint("product = 'is' OR auth = 'basic'", name=op.f('ck_product_connection_apim_basic')),
    sa.CheckConstraint("product IN ('is', 'apim')", name=op.f('ck_product_connection_product')),
    sa.CheckConstraint('connect_timeout > 0 AND read_timeout > 0', name=op.f('ck_product_connection_timeouts')),
    sa.PrimaryKeyConstraint('product', name=op.f('pk_product_connection'))
    )
    op.create_table('sharing_settings',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('direction', sa.String(length=16), nullable=False),
    sa.Column('apim_username', sa.String(length=255), nullable=False),
    sa.Column('apim_password', sa.Text(), nullable=True),
    sa.Column('identity_server_base_url', sa.String(length=2048), nullable=False),
    sa.Column('is_username', sa.String(length=255), nullable=False),
    sa.Column('is_password', sa.Text(), nullable=True),
    sa.Column('auto_configure_key_manager', sa.Boolean(), nullable=False),
    sa.Column('skip_create_resident_key_manager', sa.Boolean(), nullable=False),
    sa.Column('dotless_domains', sa.Boolean(), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("direction IN ('off', 'apim_to_is', 'is_to_apim')", name=op.f('ck_sharing_settings_direction')),
    sa.CheckConstraint('id = 1', name=op.f('ck_sharing_settings_singleton')),
    sa.CheckConstraint('skip_create_resident_key_manager OR NOT auto_configure_key_manager', name=op.f('ck_sharing_settings_skip_resident_when_auto')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sharing_settings'))
    )


def downgrade():
    op.drop_table('sharing_settings')
    op.drop_table('product_connection')
