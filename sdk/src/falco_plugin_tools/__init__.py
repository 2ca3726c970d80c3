"""The SDK's tooling: everything that builds, hosts, packages and checks plugins.

Nothing here ships inside a plugin (the runtime is the ``falco_plugin``
package, whole): the builder with its C glue (:mod:`.build`), our plugin API
declarations (:mod:`.abi`), the Python and C hosts (:mod:`.host`), the
``falco-plugin`` command (:mod:`.cli`) and one module per command, and the
pytest fixtures for plugin projects (:mod:`.testing`).
"""
