"""Example third-party plugin for ncmcp."""
