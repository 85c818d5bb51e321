"""ncmcp plugin: Nextcloud Calendar — events and tasks over CalDAV."""
