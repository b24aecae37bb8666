"""Rendering results: HTML (Jinja2 + inline SVG charts), Markdown, comparisons."""
