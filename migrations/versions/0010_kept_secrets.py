"""kept secrets: secrets typed into a failed or tested tenant form, kept encrypted for a few minutes

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'kept_secret',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('handle_hash', sa.String(length=64), nullable=False),
        sa.Column('session_id', sa.Integer(), nullable=False),
        sa.Column('form_key', sa.String(length=80), nullable=False),
        sa.Column('field', sa.String(length=64), nullable=False),
        sa.Column('bound_to', sa.String(length=64), nullable=True),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['session_id'], ['admin_session.id'],
                                name=op.f('fk_kept_secret_session_id_admin_session'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_kept_secret')),
        sa.UniqueConstraint('handle_hash', 'field', name='uq_kept_secret_handle_field'),
    )
    with op.batch_alter_table('kept_secret', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kept_secret_handle_hash'), ['handle_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_kept_secret_session_id'), ['session_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_kept_secret_expires_at'), ['expires_at'], unique=False)


def downgrade():
    op.drop_table('kept_secret')
