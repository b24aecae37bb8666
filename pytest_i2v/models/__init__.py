"""Model sources for I2VGen-XL: a hub id or local directory, full-size random weights, or a tiny model."""
