"""Descriptor models: registry, network, checkpoints, and the Embedder that runs them."""

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .embedder import Embedder, EmbedderRecipe
from .factory import create_embedder, create_embedder_from_recipe
from .registry import DEFAULT_MODEL, get_spec, list_models, register_model
from .spec import ModelSpec

__all__ = [
    "DEFAULT_MODEL",
    "Checkpoint",
    "CheckpointError",
    "Embedder",
    "EmbedderRecipe",
    "ModelSpec",
    "create_embedder",
    "create_embedder_from_recipe",
    "get_spec",
    "list_models",
    "load_checkpoint",
    "register_model",
    "save_checkpoint",
]
