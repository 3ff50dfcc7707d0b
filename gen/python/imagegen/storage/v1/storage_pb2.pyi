import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListObjectsRequest(_message.Message):
    __slots__ = ("start_after", "page_size")
    START_AFTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    start_after: str
    page_size: int
    def __init__(self, start_after: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListObjectsResponse(_message.Message):
    __slots__ = ("objects", "next_start_after")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_START_AFTER_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[ListedObject]
    next_start_after: str
    def __init__(self, objects: _Optional[_Iterable[_Union[ListedObject, _Mapping]]] = ..., next_start_after: _Optional[str] = ...) -> None: ...

class ListedObject(_message.Message):
    __slots__ = ("key", "written_at")
    KEY_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_AT_FIELD_NUMBER: _ClassVar[int]
    key: str
    written_at: _timestamp_pb2.Timestamp
    def __init__(self, key: _Optional[str] = ..., written_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetFileRequest(_message.Message):
    __slots__ = ("key", "expires", "signature")
    KEY_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    key: str
    expires: int
    signature: str
    def __init__(self, key: _Optional[str] = ..., expires: _Optional[int] = ..., signature: _Optional[str] = ...) -> None: ...

class ObjectInfo(_message.Message):
    __slots__ = ("content_type",)
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    content_type: str
    def __init__(self, content_type: _Optional[str] = ...) -> None: ...

class PutObjectRequest(_message.Message):
    __slots__ = ("info", "chunk")
    INFO_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    info: ObjectInfo
    chunk: bytes
    def __init__(self, info: _Optional[_Union[ObjectInfo, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class PutSmallObjectsRequest(_message.Message):
    __slots__ = ("objects",)
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[SmallObject]
    def __init__(self, objects: _Optional[_Iterable[_Union[SmallObject, _Mapping]]] = ...) -> None: ...

class SmallObject(_message.Message):
    __slots__ = ("info", "data", "key")
    INFO_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    info: ObjectInfo
    data: bytes
    key: str
    def __init__(self, info: _Optional[_Union[ObjectInfo, _Mapping]] = ..., data: _Optional[bytes] = ..., key: _Optional[str] = ...) -> None: ...

class PutSmallObjectsResponse(_message.Message):
    __slots__ = ("objects",)
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[PutObjectResponse]
    def __init__(self, objects: _Optional[_Iterable[_Union[PutObjectResponse, _Mapping]]] = ...) -> None: ...

class PutObjectResponse(_message.Message):
    __slots__ = ("key", "sha256", "size_bytes", "content_type", "url")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    key: str
    sha256: str
    size_bytes: int
    content_type: str
    url: str
    def __init__(self, key: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., content_type: _Optional[str] = ..., url: _Optional[str] = ...) -> None: ...

class GetObjectRequest(_message.Message):
    __slots__ = ("key", "offset", "length")
    KEY_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    key: str
    offset: int
    length: int
    def __init__(self, key: _Optional[str] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class GetObjectResponse(_message.Message):
    __slots__ = ("info", "chunk")
    INFO_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    info: ObjectInfo
    chunk: bytes
    def __init__(self, info: _Optional[_Union[ObjectInfo, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class SignUrlsRequest(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, keys: _Optional[_Iterable[str]] = ...) -> None: ...

class SignUrlsResponse(_message.Message):
    __slots__ = ("urls",)
    URLS_FIELD_NUMBER: _ClassVar[int]
    urls: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, urls: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteObjectsRequest(_message.Message):
    __slots__ = ("keys", "unless_written_since")
    class UnlessWrittenSinceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _timestamp_pb2.Timestamp
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
    KEYS_FIELD_NUMBER: _ClassVar[int]
    UNLESS_WRITTEN_SINCE_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    unless_written_since: _containers.MessageMap[str, _timestamp_pb2.Timestamp]
    def __init__(self, keys: _Optional[_Iterable[str]] = ..., unless_written_since: _Optional[_Mapping[str, _timestamp_pb2.Timestamp]] = ...) -> None: ...

class DeleteObjectsResponse(_message.Message):
    __slots__ = ("deleted", "kept")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    kept: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, deleted: _Optional[int] = ..., kept: _Optional[_Iterable[str]] = ...) -> None: ...
