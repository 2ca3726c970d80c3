"""The plugin runtime: what a built plugin library runs, besides the author API.

Everything under ``_internal`` ships inside every plugin's site directory, so
nothing here may import the SDK's tooling (builder, hosts, registry). Plugin
authors never import it.
"""
