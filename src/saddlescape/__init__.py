"""saddlescape."""
