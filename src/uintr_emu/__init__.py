"""uintr-emu: a multi-core x86-64 machine with Intel User Interrupts, for Linux programs."""

__version__ = "0.1.0"

__all__ = ["Machine", "Options", "__version__"]


def __getattr__(name: str):  # lazy: `import uintr_emu` stays cheap for the CLI's --help
    if name == "Machine":
        from .api import Machine

        return Machine
    if name == "Options":
        from .options import Options

        return Options
    raise AttributeError(name)
