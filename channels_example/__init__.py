"""The chat project. Imported before Django's apps load in every entry point, it first makes
the 2017 stack run on the Python at hand (compat.py)."""
from channels_example import compat

compat.apply()
