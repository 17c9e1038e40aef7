"""Monitoring: Prometheus metrics of every worker process, queue depth and age, resources; imported only where
metrics are on (prometheus-client's multiprocess mode must be chosen before it is imported)."""
