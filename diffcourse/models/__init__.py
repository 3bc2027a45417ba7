"""Networks: `ToyMLP` for 2D points; the MNIST networks live beside it."""
from .embeddings import LabelEmbedding, TimeEmbedding, sinusoidal_embedding
from .toy import ToyMLP

__all__ = ["ToyMLP", "TimeEmbedding", "LabelEmbedding", "sinusoidal_embedding"]
