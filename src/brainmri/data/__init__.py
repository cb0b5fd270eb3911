"""Data: find scans on disk (folders, CSV, NPZ), read them, split them, audit them."""
