"""bench/ingest: how many 720p cameras one core of ingest sustains, against a bare PyAV decode
loop over the same streams measured in the same run (issue 5). `python -m bench.ingest`; see
__main__."""
