"""Training: sequence and token classifiers fine-tuned with PyTorch on one loop (imported lazily)."""

from lepton_runtime.training.base_models import default_base_model
from lepton_runtime.training.finetune import TrainingResult, fine_tune, stratified_split
from lepton_runtime.training.loop import TrainingConfig

__all__ = ["TrainingConfig", "TrainingResult", "default_base_model", "fine_tune", "stratified_split"]
