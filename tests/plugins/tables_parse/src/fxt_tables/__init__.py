"""Test fixture plugin: state tables."""
