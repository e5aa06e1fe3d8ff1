"""Recorded video files: split into segments, processed by the worker pool, merged once."""
