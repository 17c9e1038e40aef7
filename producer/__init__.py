"""Producers: the Python client (and, with it, the CLI) that submit jobs and follow them."""

from producer.client import BulkJob, ClassifyJob, LeptonClient

__all__ = ["BulkJob", "ClassifyJob", "LeptonClient"]
