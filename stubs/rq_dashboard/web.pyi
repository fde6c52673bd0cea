from collections.abc import Callable
from datetime import datetime
from typing import Any, ParamSpec

from flask.typing import ResponseReturnValue
from rq.job import Job

_P = ParamSpec("_P")

config: Any  # a namespace: .serializer and the dashboard's other settings

def jsonify(f: Callable[_P, dict[str, Any]]) -> Callable[_P, ResponseReturnValue]: ...
def push_rq_connection() -> None: ...
def serialize_date(dt: datetime | None) -> str | None: ...
def format_job_description(job: Job) -> str: ...
