"""Reports: the (camera_id, bucket_start) indexes of count_buckets and zone_buckets carry the
columns a report reads, so a camera's month is an index-only scan.

Workers write buckets in time order across all cameras, so one camera's month of minutes lies
on as many heap pages as it has rows (43,200): reading them cost ~150 ms per report at 200
cameras and more once the table outgrows memory (bench/reports). From the index alone it is a
few hundred pages. The price: `count` is now indexed, so updating a bucket can never be a HOT
update and also writes this index, which holds dead versions of the current minute until
vacuum. Measured: 20,000 single-row upsert transactions (200 cameras, 20 per camera-minute)
ran at the same rate with and without it (within noise, ~6,000/s; none was HOT without it
either: the pages were full).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COUNT_COLUMNS = ["line_id", "object_class", "direction", "count"]
ZONE_COLUMNS = ["zone_id", "object_class", "entries", "exits", "peak_occupancy",
                "dwell_total_s", "dwell_count"]


def upgrade() -> None:
    op.drop_index("ix_count_buckets_camera_time", table_name="count_buckets")
    op.create_index("ix_count_buckets_camera_time", "count_buckets",
                    ["camera_id", "bucket_start"], postgresql_include=COUNT_COLUMNS)
    op.drop_index("ix_zone_buckets_camera_time", table_name="zone_buckets")
    op.create_index("ix_zone_buckets_camera_time", "zone_buckets",
                    ["camera_id", "bucket_start"], postgresql_include=ZONE_COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_zone_buckets_camera_time", table_name="zone_buckets")
    op.create_index("ix_zone_buckets_camera_time", "zone_buckets", ["camera_id", "bucket_start"])
    op.drop_index("ix_count_buckets_camera_time", table_name="count_buckets")
    op.create_index("ix_count_buckets_camera_time", "count_buckets",
                    ["camera_id", "bucket_start"])
