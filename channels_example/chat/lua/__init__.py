"""The chat's Lua scripts on Redis, one file each, headed with its KEYS and ARGV.

deliver.lua runs after a sends library: the channel layer's (channels_example/layers/lua/sends.lua,
given by its ``lua_sends()``) or collect.lua. Nothing of the configuration is written into a script:
values travel as arguments.
"""
import os

from channels_example.layers import lua

HERE = os.path.dirname(os.path.abspath(__file__))


def source(*names):
    """The Lua of these files of this folder, in order."""
    return lua.source(*names, folder=HERE)
