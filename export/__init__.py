"""Export: PyTorch checkpoints to ONNX, parity and quality gates, reduced-precision variants, publishing."""

from export.publish import export_checkpoint

__all__ = ["export_checkpoint"]
