"""Test fixture plugin: An extract-only plugin with every field type and argument kind, and a rich config schema."""
