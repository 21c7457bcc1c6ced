"""certificates and thumbprint mappings

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 07:01:01.414034

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('certificate',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('label', sa.String(length=128), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.Column('thumbprint', sa.String(length=95), nullable=False),
    sa.Column('subject_dn', sa.Text(), nullable=False),
    sa.Column('issuer_dn', sa.Text(), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('private_key', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('apim', 'is', 'ca', 'client')", name=op.f('ck_certificate_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificate')),
    sa.UniqueConstraint('role', 'thumbprint', name='uq_certificate_role_thumbprint')
    )
    with op.batch_alter_table('certificate', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certificate_role'), ['role'], unique=False)

    op.create_table('thumbprint_mapping',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('trusted_issuer', sa.Text(), nullable=False),
    sa.Column('cert_thumbprint', sa.String(length=255), nullable=False),
    sa.Column('allowed_usernames', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('allowed_system_user', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('user', 'system')", name=op.f('ck_thumbprint_mapping_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_thumbprint_mapping'))
    )
    with op.batch_alter_table('thumbprint_mapping', schema=None) as batch_op:
        batch_op.create_index('ix_thumbprint_mapping_kind_position', ['kind', 'position'], unique=False)



def downgrade():
    with op.batch_alter_table('thumbprint_mapping', schema=None) as batch_op:
        batch_op.drop_index('ix_thumbprint_mapping_kind_position')

    op.drop_table('thumbprint_mapping')
    with op.batch_alter_table('certificate', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_certificate_role'))

    op.drop_table('certificate')
