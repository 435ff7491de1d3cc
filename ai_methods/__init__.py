"""ai_methods package."""
