"""SQL storage: table models, the engine adapter and the batch writer."""
