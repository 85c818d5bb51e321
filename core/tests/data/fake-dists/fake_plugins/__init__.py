"""Plugins that break the contract, each in one way (found through the fake dist-infos beside this)."""
