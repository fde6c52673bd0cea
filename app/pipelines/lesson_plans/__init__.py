"""The lesson-plan pipeline: a run generates a workflow's modules one at a time, and its status."""
