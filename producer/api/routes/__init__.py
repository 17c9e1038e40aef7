"""One router per resource of the HTTP API: classify, jobs, training, models, operations."""
