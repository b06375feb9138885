"""The adapted foundation model: training, evaluation and batched serving."""
