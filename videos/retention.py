"""An uploaded video's file is deleted once its job is settled (done or failed), unless
KEEP_UPLOADED_VIDEOS says keep it: the counts are in the database by then, and a video of
gigabytes per job would fill VIDEO_DIR.

Only uploads: the API wrote those under VIDEO_DIR for the job. A file a job named under
VIDEO_SOURCE_DIR is the operator's and is never deleted.

Deleted after the commit that settles the job, by whichever process settled it (the runner,
or the registry for an operator's finalize): a crash in between leaves the file, and any later
finalize of the job (it answers 'already') deletes it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from prometheus_client import Counter

log = logging.getLogger("camcount.videos")

DELETED = Counter("camcount_videos_uploads_deleted_total",
                  "Uploaded video files deleted once their job was settled")


async def discard_upload(job_id: str, source_path: str, uploaded: bool, keep: bool) -> bool:
    """Delete the job's uploaded file; True when this call deleted it. Never raises: the job
    is settled whatever becomes of its file."""
    if keep or not uploaded:
        return False
    path = Path(source_path)
    try:
        await asyncio.to_thread(path.unlink)
    except FileNotFoundError:
        return False  # deleted by an earlier settle
    except OSError as exc:
        log.warning("video job %s: its upload %s could not be deleted: %s", job_id, path.name,
                    exc)
        return False
    DELETED.inc()
    log.info("video job %s: deleted its upload %s", job_id, path.name)
    return True
