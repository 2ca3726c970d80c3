"""dummy_py: the reference Python plugin (see plugin.py)."""
