"""Plugin installation helpers (Python dependencies, shipped Processing models): no numeric code."""
