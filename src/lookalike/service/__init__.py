"""The HTTP service for moderation tools (FastAPI). Not built yet: it has its own issue."""
