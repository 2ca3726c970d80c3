"""Test fixture plugin: A plugin whose entry points raise on demand (failure injection)."""
