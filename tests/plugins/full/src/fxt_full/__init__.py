"""Test fixture plugin: A source + extract plugin with every optional entry point."""
