"""bench/balancer_sim: the balancer's policies compared in a discrete-event simulation."""
