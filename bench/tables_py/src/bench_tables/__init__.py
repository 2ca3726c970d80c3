"""State table benchmark plugin."""
