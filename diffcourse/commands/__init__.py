"""Command-line commands: one module per ``python -m diffcourse COMMAND``.

Each module defines ``register(subparsers)``, which adds its parser and sets
``func(args) -> int`` as the parser's default. `diffcourse.__main__` finds the
modules by itself, so adding a command means adding a module here.
"""
