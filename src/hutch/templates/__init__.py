"""Templates: the root filesystems sandboxes start from, and what is shipped into them (envd)."""
