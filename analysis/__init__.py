"""Thin scripts that regenerate each figure, table and benchmark at full size."""
