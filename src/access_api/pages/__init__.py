"""The hosted pages behind every emailed link: plain HTML with a small script (pages/*.html)."""
