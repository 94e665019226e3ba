"""JSON responses written by orjson.

Every answer of the API is JSON, and on the hot path (a worklist read, a completion) writing it with the standard
library took a few percent of the request's CPU. orjson writes the same document: compact, keys in the order
given, and what it does not know itself (datetimes, UUIDs, dataclasses: handed on with orjson's passthrough
options) converted by Flask's own default, so a datetime is still an HTTP date. The differences: characters
beyond ASCII are sent as UTF-8 rather than escaped (the same text to any JSON reader), and a document orjson
refuses (integers past 64 bits, keys that are not strings) is written by Flask's provider as before.
"""
from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider

_AS_FLASK_WOULD = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_APPEND_NEWLINE


class OrjsonProvider(DefaultJSONProvider):
    sort_keys = False

    def response(self, *args: Any, **kwargs: Any) -> Response:
        if self._app.debug or self.compact is False:  # indented for a person: Flask's way
            return super().response(*args, **kwargs)
        document = self._prepare_response_obj(args, kwargs)
        try:
            body = orjson.dumps(document, default=self.default, option=_AS_FLASK_WOULD)
        except orjson.JSONEncodeError:
            return super().response(*args, **kwargs)
        return self._app.response_class(body, mimetype=self.mimetype)
