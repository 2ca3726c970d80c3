"""Test fixture plugin: A source + extract plugin with no optional entry point that pins plugin API 3.4.0."""
