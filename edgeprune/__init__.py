"""edgeprune."""
