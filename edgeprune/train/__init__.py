"""Stage: training and data (the trainer itself arrives with the training-core issue)."""
