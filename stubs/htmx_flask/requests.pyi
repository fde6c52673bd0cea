from flask import Request

class HtmxHeaders:
    def __bool__(self) -> bool: ...  # true when the request came from htmx (HX-Request: true)
    @property
    def boosted(self) -> bool: ...
    @property
    def current_url(self) -> str | None: ...
    @property
    def target(self) -> str | None: ...
    @property
    def trigger(self) -> str | None: ...

class HtmxAwareRequest(Request):
    htmx: HtmxHeaders
