"""The review page (`vitrine review serve`): app factory, templates and static files in one folder."""
