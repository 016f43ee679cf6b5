"""E2B's REST wire models (spec §1.4): field names as the SDK sends and parses them."""
