"""dranet_backends: the built-in backends (netdev, sriov, rdma).

Each is registered in the ``dranet.backends`` entry-point group exactly as a third party's
backend would be; ``dranet_core`` never imports this package.
"""
