"""Example python.stage code for spineparse (docs/python.md)."""
