"""Producers: the Python client, HTTP API and CLI that enqueue jobs (never import onnxruntime or torch)."""
