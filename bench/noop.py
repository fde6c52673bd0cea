"""The baseline's job: nothing at all, so a bare RQ run measures RQ alone."""


def noop(n: int) -> int:
    return n
