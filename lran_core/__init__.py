"""LRAN: Local Residual Attention Networks for breast histology, with their explanations.

Tensors in, tensors out: models, maps, data readers, training, evaluation, checkpoints.
"""

from .checkpoint import (
    CheckpointError,
    NoWeightsError,
    list_model_sets,
    load_model,
    load_model_set,
    models_dir,
    save_checkpoint,
)
from .models import Explanation, LRANClassifier, ModelMeta, build_model, list_models

__all__ = [
    "CheckpointError",
    "Explanation",
    "LRANClassifier",
    "ModelMeta",
    "NoWeightsError",
    "build_model",
    "list_model_sets",
    "list_models",
    "load_model",
    "load_model_set",
    "models_dir",
    "save_checkpoint",
]
