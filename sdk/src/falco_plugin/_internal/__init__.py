"""SDK internals: ABI declarations, the C glue and its Python counterpart.

Nothing here is part of the public API; plugin authors never import it.
"""
