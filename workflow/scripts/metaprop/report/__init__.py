"""The report's text, as Markdown and self-contained HTML."""
