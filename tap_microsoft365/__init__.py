"""tap-microsoft365: Microsoft 365 licensing and usage from Microsoft Graph, as a Singer tap."""
