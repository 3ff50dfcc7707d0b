from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GatewayCheckRequest(_message.Message):
    __slots__ = ("attributes",)
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    attributes: GatewayCheckAttributes
    def __init__(self, attributes: _Optional[_Union[GatewayCheckAttributes, _Mapping]] = ...) -> None: ...

class GatewayCheckAttributes(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: GatewayCheckedRequest
    def __init__(self, request: _Optional[_Union[GatewayCheckedRequest, _Mapping]] = ...) -> None: ...

class GatewayCheckedRequest(_message.Message):
    __slots__ = ("http",)
    HTTP_FIELD_NUMBER: _ClassVar[int]
    http: GatewayCheckedHttpRequest
    def __init__(self, http: _Optional[_Union[GatewayCheckedHttpRequest, _Mapping]] = ...) -> None: ...

class GatewayCheckedHttpRequest(_message.Message):
    __slots__ = ("headers",)
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    headers: _containers.ScalarMap[str, str]
    def __init__(self, headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GatewayCheckResponse(_message.Message):
    __slots__ = ("status", "denied_response")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DENIED_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    status: GatewayCheckStatus
    denied_response: GatewayDeniedHttpResponse
    def __init__(self, status: _Optional[_Union[GatewayCheckStatus, _Mapping]] = ..., denied_response: _Optional[_Union[GatewayDeniedHttpResponse, _Mapping]] = ...) -> None: ...

class GatewayCheckStatus(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class GatewayDeniedHttpResponse(_message.Message):
    __slots__ = ("status", "headers", "body")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    status: GatewayHttpStatus
    headers: _containers.RepeatedCompositeFieldContainer[GatewayHeaderValueOption]
    body: str
    def __init__(self, status: _Optional[_Union[GatewayHttpStatus, _Mapping]] = ..., headers: _Optional[_Iterable[_Union[GatewayHeaderValueOption, _Mapping]]] = ..., body: _Optional[str] = ...) -> None: ...

class GatewayHttpStatus(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: int
    def __init__(self, code: _Optional[int] = ...) -> None: ...

class GatewayHeaderValueOption(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: GatewayHeaderValue
    def __init__(self, header: _Optional[_Union[GatewayHeaderValue, _Mapping]] = ...) -> None: ...

class GatewayHeaderValue(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
