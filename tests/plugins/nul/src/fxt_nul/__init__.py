"""Test fixture plugin: string fields whose values hold an embedded NUL."""
