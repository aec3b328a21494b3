"""Explain: shapes, parameters and pictures of convolutions."""
