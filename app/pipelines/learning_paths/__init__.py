"""The learning-path pipeline: a build's steps, control, finalize, failures, recovery, status and events."""
