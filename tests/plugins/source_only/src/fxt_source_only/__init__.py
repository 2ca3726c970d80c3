"""Test fixture plugin: A source-only plugin: no config schema, no optional entry point."""
