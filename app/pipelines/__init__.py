"""One module per pipeline: job functions and what drives them, free of Flask requests."""
