"""Kubernetes API adapters: the client factory, ResourceSlices, claim status, events.

Modules: :mod:`.client` (ApiClient from kubeconfig/in-cluster, resource.k8s.io version
probing), :mod:`.slices` (slice planning), :mod:`.claimstatus`, :mod:`.events`,
:mod:`.publisher` (``KubeStatusPublisher``), :mod:`.local` (``LocalStatusPublisher``),
:mod:`.claims` (the claim source, owned by the kubelet side).
"""
