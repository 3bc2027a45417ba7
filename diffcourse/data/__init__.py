"""Datasets: 2D toys with known densities (`toy2d`) and MNIST (`mnist`)."""
