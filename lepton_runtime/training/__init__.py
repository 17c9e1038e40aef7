"""Training: fine-tune sequence classifiers with PyTorch (torch and transformers are imported lazily)."""

from lepton_runtime.training.base_models import default_base_model
from lepton_runtime.training.finetune import TrainingConfig, TrainingResult, fine_tune, stratified_split

__all__ = ["TrainingConfig", "TrainingResult", "default_base_model", "fine_tune", "stratified_split"]
