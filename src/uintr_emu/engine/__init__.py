"""The engine layer: the only code that touches Unicorn."""
