"""bench/relay: the balancer relaying frame batches, against a plain consume-and-republish
forwarder measured in the same run (issue 4). `python -m bench.relay`; see __main__."""
