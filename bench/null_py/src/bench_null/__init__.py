"""Null benchmark plugin: the SDK's own cost per event and per field call."""
