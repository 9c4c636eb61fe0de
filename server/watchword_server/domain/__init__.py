"""The domain: account flows, sessions, access rules and events, in plain Python types."""
