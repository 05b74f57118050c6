pytest_plugins = ["dranet_core.testing.pytest_plugin"]
