"""Test fixture: a stand-in extractor for the syscall source (field names, no values)."""
