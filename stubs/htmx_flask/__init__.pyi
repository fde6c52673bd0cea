# htmx-flask 0.1: the parts app/ uses. The package is annotated but ships no py.typed, and the
# type it gives `request` (a cast after `from flask import request`) is lost on mypy.
from flask import Flask

from .requests import HtmxAwareRequest

request: HtmxAwareRequest  # flask.request, once Htmx.init_app has set the app's request class

class Htmx:
    def __init__(self, app: Flask | None = ...) -> None: ...
    def init_app(self, app: Flask) -> None: ...
