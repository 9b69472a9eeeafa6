"""Operators of the EVERY8D provider (import the submodules: this package stays import-light)."""
