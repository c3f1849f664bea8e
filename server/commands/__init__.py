"""The commands of the `coscribe` CLI, one module per command or group."""
