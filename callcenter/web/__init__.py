"""Shell: the HTTP API, the live wallboard (server-sent events) and Prometheus ``/metrics``."""
