"""Networks: `ToyMLP` for 2D points; `UNet`, `Classifier`, `NoisyClassifier` for MNIST; `Autoencoder`, `LatentUNet`
(with its `PromptEncoder`) and `GAN` for chapter 8."""
from .autoencoder import Autoencoder
from .classifier import Classifier, NoisyClassifier
from .embeddings import LabelEmbedding, TimeEmbedding, sinusoidal_embedding
from .gan import GAN
from .latent_unet import LatentUNet
from .text import PromptEncoder
from .toy import ToyClassifier, ToyMLP
from .unet import UNet

__all__ = ["ToyMLP", "ToyClassifier", "UNet", "Classifier", "NoisyClassifier", "TimeEmbedding", "LabelEmbedding",
           "sinusoidal_embedding", "Autoencoder", "LatentUNet", "PromptEncoder", "GAN"]
