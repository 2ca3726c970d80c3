"""The counter Falco plugin."""
