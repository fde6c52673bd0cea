"""One package per pipeline (lesson_plans/, learning_paths/), free of Flask requests; what both share
(the generation call, usage, alerts, listings, stream slots) sits beside them."""
