"""k8s_parse: the Kubernetes pod of every syscall event's process (a reference plugin of the SDK)."""
