"""The worker pool: one manager process that runs, restarts, scales and drains workers."""
