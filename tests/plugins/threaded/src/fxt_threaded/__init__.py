"""Test fixture plugin: A source plugin that leaves Python threads running."""
