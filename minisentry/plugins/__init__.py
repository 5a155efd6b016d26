"""Built-in plugins: each registers what lives in ``backends/`` through the public hooks."""
