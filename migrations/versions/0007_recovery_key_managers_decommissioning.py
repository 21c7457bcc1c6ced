"""recovery, key managers, decommissioning: job fix hints and the discarded state, the decommission op and record,
key manager checks, the generated API Manager admin password for invite-via-email owners

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 07:55:09.885402

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

OPS_BEFORE = "op IN ('create', 'update_owner', 'activate', 'deactivate', 'sync')"
OPS_AFTER = "op IN ('create', 'update_owner', 'activate', 'deactivate', 'sync', 'decommission')"
STATES_BEFORE = "status IN ('pending', 'running', 'done', 'failed')"
STATES_AFTER = "status IN ('pending', 'running', 'done', 'failed', 'discarded')"


def upgrade():
    op.create_table('decommission',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('domain', sa.String(length=253), nullable=False),
    sa.Column('display_name', sa.String(length=255), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('is_outcome', sa.String(length=16), nullable=False),
    sa.Column('apim_outcome', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.CheckConstraint("apim_outcome IN ('pending', 'deleted', 'deactivated', 'absent', 'failed')", name=op.f('ck_decommission_apim_outcome')),
    sa.CheckConstraint("is_outcome IN ('pending', 'deleted', 'deactivated', 'absent', 'failed')", name=op.f('ck_decommission_is_outcome')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decommission'))
    )
    with op.batch_alter_table('decommission', schema=None) as batch_op:
        batch_op.create_index('ix_decommission_domain', ['domain'], unique=False)

    op.create_table('key_manager_check',
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('key_manager_id', sa.String(length=64), nullable=True),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('repaired_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('ok', 'missing', 'duplicate', 'mismatch', 'unverifiable', 'error', 'not_expected')", name=op.f('ck_key_manager_check_status')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_key_manager_check_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_key_manager_check'))
    )
    with op.batch_alter_table('outbox_job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fix', sa.String(length=32), nullable=True))
        batch_op.drop_constraint(op.f('ck_outbox_job_op'), type_='check')
        batch_op.drop_constraint(op.f('ck_outbox_job_status'), type_='check')
        batch_op.create_check_constraint('op', OPS_AFTER)
        batch_op.create_check_constraint('status', STATES_AFTER)

    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fix', sa.String(length=32), nullable=True))

    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('apim_admin_password', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('decommission_requested_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('decommission_requested_by', sa.String(length=64), nullable=True))



def downgrade():
    with op.batch_alter_table('tenant', schema=None) as batch_op:
        batch_op.drop_column('decommission_requested_by')
        batch_op.drop_column('decommission_requested_at')
        batch_op.drop_column('apim_admin_password')

    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        batch_op.drop_column('fix')

    op.execute("DELETE FROM outbox_job WHERE op = 'decommission'")
    op.execute("UPDATE outbox_job SET status = 'failed' WHERE status = 'discarded'")
    with op.batch_alter_table('outbox_job', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_outbox_job_op'), type_='check')
        batch_op.drop_constraint(op.f('ck_outbox_job_status'), type_='check')
        batch_op.create_check_constraint('op', OPS_BEFORE)
        batch_op.create_check_constraint('status', STATES_BEFORE)
        batch_op.drop_column('fix')

    op.drop_table('key_manager_check')
    with op.batch_alter_table('decommission', schema=None) as batch_op:
        batch_op.drop_index('ix_decommission_domain')

    op.drop_table('decommission')
