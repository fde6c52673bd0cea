"""A failure that tells the job machinery how to take it: the category a job records and whether
another attempt may succeed. It sits below jobs and generators so both can use it."""

from __future__ import annotations


class CategorizedFailure(Exception):
    category = "error"
    transient = True
