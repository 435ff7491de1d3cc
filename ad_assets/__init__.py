"""ad_assets package."""
