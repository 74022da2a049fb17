"""The devices of the full-system machine, each a small model of its datasheet (docs/system.md,
"Devices")."""
