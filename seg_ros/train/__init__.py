"""Training tools: torch lives here (and in engines/torch.py) only."""
