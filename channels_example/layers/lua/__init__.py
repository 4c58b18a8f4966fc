"""The layer's Lua scripts, one file each, headed with its KEYS and ARGV; ``source`` joins a script to
the functions it calls (push.lua). Values travel as arguments: no Python value is written into a script."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def source(*names, folder=HERE):
    """The Lua of these files of ``folder``, in order (functions first, then the script that calls them)."""
    parts = []
    for name in names:
        with open(os.path.join(folder, name), encoding="utf-8") as file:
            parts.append(file.read())
    return "\n".join(parts)
