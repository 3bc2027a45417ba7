"""Networks: `ToyMLP` for 2D points; `UNet`, `Classifier`, `NoisyClassifier` for MNIST."""
from .classifier import Classifier, NoisyClassifier
from .embeddings import LabelEmbedding, TimeEmbedding, sinusoidal_embedding
from .toy import ToyClassifier, ToyMLP
from .unet import UNet

__all__ = ["ToyMLP", "ToyClassifier", "UNet", "Classifier", "NoisyClassifier", "TimeEmbedding", "LabelEmbedding",
           "sinusoidal_embedding"]
