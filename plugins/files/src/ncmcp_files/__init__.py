"""ncmcp plugin: the user's Nextcloud files over WebDAV."""
