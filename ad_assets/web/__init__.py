"""The search pages and their JSON API (``ad-assets serve``)."""
