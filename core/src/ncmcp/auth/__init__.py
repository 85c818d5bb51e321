"""Token verification, scope rules and challenges. Plugins never import from here."""
