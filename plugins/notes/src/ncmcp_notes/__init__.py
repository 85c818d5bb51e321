"""Nextcloud Notes plugin for ncmcp."""
