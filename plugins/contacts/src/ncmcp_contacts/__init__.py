"""ncmcp plugin: Nextcloud Contacts (CardDAV)."""
