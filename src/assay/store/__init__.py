"""The run store (what happened) and where it lives."""
