import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateGenerationRequest(_message.Message):
    __slots__ = ("prompt", "model", "user", "n", "width", "height", "seed", "negative_prompt", "priority", "callback_url", "version", "input", "input_images", "mask", "cluster", "webhook_events_filter")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    ASYNC_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    INPUT_IMAGES_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_EVENTS_FILTER_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    model: str
    user: str
    n: int
    width: int
    height: int
    seed: int
    negative_prompt: str
    priority: str
    callback_url: str
    version: str
    input: str
    input_images: _containers.RepeatedScalarFieldContainer[str]
    mask: str
    cluster: str
    webhook_events_filter: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, prompt: _Optional[str] = ..., model: _Optional[str] = ..., user: _Optional[str] = ..., n: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., seed: _Optional[int] = ..., negative_prompt: _Optional[str] = ..., priority: _Optional[str] = ..., callback_url: _Optional[str] = ..., version: _Optional[str] = ..., input: _Optional[str] = ..., input_images: _Optional[_Iterable[str]] = ..., mask: _Optional[str] = ..., cluster: _Optional[str] = ..., webhook_events_filter: _Optional[_Iterable[str]] = ..., **kwargs) -> None: ...

class CancelGenerationRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class WatchGenerationRequest(_message.Message):
    __slots__ = ("id", "previews")
    ID_FIELD_NUMBER: _ClassVar[int]
    PREVIEWS_FIELD_NUMBER: _ClassVar[int]
    id: str
    previews: bool
    def __init__(self, id: _Optional[str] = ..., previews: _Optional[bool] = ...) -> None: ...

class GetGenerationRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListGenerationsRequest(_message.Message):
    __slots__ = ("user", "model", "status", "id", "page_size", "page_token", "cluster")
    USER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    user: str
    model: str
    status: str
    id: str
    page_size: int
    page_token: str
    cluster: str
    def __init__(self, user: _Optional[str] = ..., model: _Optional[str] = ..., status: _Optional[str] = ..., id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., cluster: _Optional[str] = ...) -> None: ...

class ListGenerationsResponse(_message.Message):
    __slots__ = ("results", "pagination")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    PAGINATION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[Generation]
    pagination: Pagination
    def __init__(self, results: _Optional[_Iterable[_Union[Generation, _Mapping]]] = ..., pagination: _Optional[_Union[Pagination, _Mapping]] = ...) -> None: ...

class Pagination(_message.Message):
    __slots__ = ("page_size", "next_page_token", "previous_page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    next_page_token: str
    previous_page_token: str
    def __init__(self, page_size: _Optional[int] = ..., next_page_token: _Optional[str] = ..., previous_page_token: _Optional[str] = ...) -> None: ...

class DeleteGenerationRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class Generation(_message.Message):
    __slots__ = ("id", "project_id", "model_id", "model", "server_id", "status", "user", "reason", "prompt", "negative_prompt", "n", "width", "height", "seed", "output_images", "created_at", "updated_at", "priority", "callback_url", "version", "input", "request_body", "input_images", "queue_position", "progress", "step", "steps", "started_at", "completed_at", "preview", "webhook_events_filter")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_IMAGES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BODY_FIELD_NUMBER: _ClassVar[int]
    INPUT_IMAGES_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_EVENTS_FILTER_FIELD_NUMBER: _ClassVar[int]
    id: str
    project_id: str
    model_id: str
    model: str
    server_id: str
    status: str
    user: str
    reason: str
    prompt: str
    negative_prompt: str
    n: int
    width: int
    height: int
    seed: int
    output_images: _containers.RepeatedCompositeFieldContainer[OutputImage]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    priority: str
    callback_url: str
    version: str
    input: str
    request_body: bytes
    input_images: _containers.RepeatedCompositeFieldContainer[InputImage]
    queue_position: int
    progress: float
    step: int
    steps: int
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    preview: str
    webhook_events_filter: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., project_id: _Optional[str] = ..., model_id: _Optional[str] = ..., model: _Optional[str] = ..., server_id: _Optional[str] = ..., status: _Optional[str] = ..., user: _Optional[str] = ..., reason: _Optional[str] = ..., prompt: _Optional[str] = ..., negative_prompt: _Optional[str] = ..., n: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., seed: _Optional[int] = ..., output_images: _Optional[_Iterable[_Union[OutputImage, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., priority: _Optional[str] = ..., callback_url: _Optional[str] = ..., version: _Optional[str] = ..., input: _Optional[str] = ..., request_body: _Optional[bytes] = ..., input_images: _Optional[_Iterable[_Union[InputImage, _Mapping]]] = ..., queue_position: _Optional[int] = ..., progress: _Optional[float] = ..., step: _Optional[int] = ..., steps: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., preview: _Optional[str] = ..., webhook_events_filter: _Optional[_Iterable[str]] = ...) -> None: ...

class Upload(_message.Message):
    __slots__ = ("id", "url", "content_type", "sha256", "size_bytes", "width", "height", "created_at", "expires_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    url: str
    content_type: str
    sha256: str
    size_bytes: int
    width: int
    height: int
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., url: _Optional[str] = ..., content_type: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class InputImage(_message.Message):
    __slots__ = ("role", "pointer", "url", "content_type", "sha256", "size_bytes", "width", "height")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    POINTER_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    role: str
    pointer: str
    url: str
    content_type: str
    sha256: str
    size_bytes: int
    width: int
    height: int
    def __init__(self, role: _Optional[str] = ..., pointer: _Optional[str] = ..., url: _Optional[str] = ..., content_type: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class OutputImage(_message.Message):
    __slots__ = ("id", "project_id", "image_generation_id", "url", "content_type", "sha256", "size_bytes", "width", "height", "permanent_url", "manifest_label", "arweave", "variants")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PERMANENT_URL_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_LABEL_FIELD_NUMBER: _ClassVar[int]
    ARWEAVE_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    project_id: str
    image_generation_id: str
    url: str
    content_type: str
    sha256: str
    size_bytes: int
    width: int
    height: int
    permanent_url: str
    manifest_label: str
    arweave: ArweaveArchive
    variants: _containers.RepeatedCompositeFieldContainer[ImageVariant]
    def __init__(self, id: _Optional[str] = ..., project_id: _Optional[str] = ..., image_generation_id: _Optional[str] = ..., url: _Optional[str] = ..., content_type: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., permanent_url: _Optional[str] = ..., manifest_label: _Optional[str] = ..., arweave: _Optional[_Union[ArweaveArchive, _Mapping]] = ..., variants: _Optional[_Iterable[_Union[ImageVariant, _Mapping]]] = ...) -> None: ...

class ImageVariant(_message.Message):
    __slots__ = ("width", "height", "url", "content_type")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    url: str
    content_type: str
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., url: _Optional[str] = ..., content_type: _Optional[str] = ...) -> None: ...

class ArweaveArchive(_message.Message):
    __slots__ = ("state", "transaction_id", "url", "last_error")
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    state: str
    transaction_id: str
    url: str
    last_error: str
    def __init__(self, state: _Optional[str] = ..., transaction_id: _Optional[str] = ..., url: _Optional[str] = ..., last_error: _Optional[str] = ...) -> None: ...

class GetConsoleFileRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class GetPermanentImageRequest(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class GetGenerationProvenanceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GenerationProvenance(_message.Message):
    __slots__ = ("id", "images")
    ID_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    id: str
    images: _containers.RepeatedCompositeFieldContainer[ImageProvenance]
    def __init__(self, id: _Optional[str] = ..., images: _Optional[_Iterable[_Union[ImageProvenance, _Mapping]]] = ...) -> None: ...

class ImageProvenance(_message.Message):
    __slots__ = ("image_id", "sha256", "validation_state", "message", "manifest_label", "signer", "manifest_store", "failures")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_LABEL_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_STORE_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    sha256: str
    validation_state: str
    message: str
    manifest_label: str
    signer: ManifestSigner
    manifest_store: _struct_pb2.Struct
    failures: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, image_id: _Optional[str] = ..., sha256: _Optional[str] = ..., validation_state: _Optional[str] = ..., message: _Optional[str] = ..., manifest_label: _Optional[str] = ..., signer: _Optional[_Union[ManifestSigner, _Mapping]] = ..., manifest_store: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., failures: _Optional[_Iterable[str]] = ...) -> None: ...

class ManifestSigner(_message.Message):
    __slots__ = ("issuer", "common_name", "alg")
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    COMMON_NAME_FIELD_NUMBER: _ClassVar[int]
    ALG_FIELD_NUMBER: _ClassVar[int]
    issuer: str
    common_name: str
    alg: str
    def __init__(self, issuer: _Optional[str] = ..., common_name: _Optional[str] = ..., alg: _Optional[str] = ...) -> None: ...

class RecoupGenerateImageRequest(_message.Message):
    __slots__ = ("prompt", "account_id", "include", "files")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    account_id: str
    include: _containers.RepeatedScalarFieldContainer[str]
    files: str
    def __init__(self, prompt: _Optional[str] = ..., account_id: _Optional[str] = ..., include: _Optional[_Iterable[str]] = ..., files: _Optional[str] = ...) -> None: ...

class RecoupGenerateImageResponse(_message.Message):
    __slots__ = ("images", "warnings", "responses", "provider_metadata", "usage", "image_url", "provenance", "arweave_result")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_METADATA_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    ARWEAVE_RESULT_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[RecoupImage]
    warnings: _containers.RepeatedCompositeFieldContainer[RecoupWarning]
    responses: _containers.RepeatedCompositeFieldContainer[RecoupResponse]
    provider_metadata: RecoupProviderMetadata
    usage: RecoupUsage
    image_url: str
    provenance: RecoupProvenance
    arweave_result: ArweaveTransaction
    def __init__(self, images: _Optional[_Iterable[_Union[RecoupImage, _Mapping]]] = ..., warnings: _Optional[_Iterable[_Union[RecoupWarning, _Mapping]]] = ..., responses: _Optional[_Iterable[_Union[RecoupResponse, _Mapping]]] = ..., provider_metadata: _Optional[_Union[RecoupProviderMetadata, _Mapping]] = ..., usage: _Optional[_Union[RecoupUsage, _Mapping]] = ..., image_url: _Optional[str] = ..., provenance: _Optional[_Union[RecoupProvenance, _Mapping]] = ..., arweave_result: _Optional[_Union[ArweaveTransaction, _Mapping]] = ...) -> None: ...

class RecoupImage(_message.Message):
    __slots__ = ("base64", "media_type", "uint8_array")
    BASE64_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    UINT8_ARRAY_FIELD_NUMBER: _ClassVar[int]
    base64: str
    media_type: str
    uint8_array: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, base64: _Optional[str] = ..., media_type: _Optional[str] = ..., uint8_array: _Optional[_Iterable[int]] = ...) -> None: ...

class RecoupWarning(_message.Message):
    __slots__ = ("type", "setting", "message")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SETTING_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    type: str
    setting: str
    message: str
    def __init__(self, type: _Optional[str] = ..., setting: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class RecoupResponse(_message.Message):
    __slots__ = ("finish_reason", "model_id", "timestamp")
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    finish_reason: str
    model_id: str
    timestamp: _timestamp_pb2.Timestamp
    def __init__(self, finish_reason: _Optional[str] = ..., model_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecoupProviderMetadata(_message.Message):
    __slots__ = ("model", "size")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    model: str
    size: str
    def __init__(self, model: _Optional[str] = ..., size: _Optional[str] = ...) -> None: ...

class RecoupUsage(_message.Message):
    __slots__ = ("prompt_tokens", "completion_tokens", "total_tokens")
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    def __init__(self, prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ...) -> None: ...

class RecoupProvenance(_message.Message):
    __slots__ = ("sha256", "manifest_label", "signer", "validation_state")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_LABEL_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_STATE_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    manifest_label: str
    signer: str
    validation_state: str
    def __init__(self, sha256: _Optional[str] = ..., manifest_label: _Optional[str] = ..., signer: _Optional[str] = ..., validation_state: _Optional[str] = ...) -> None: ...

class ArweaveTransaction(_message.Message):
    __slots__ = ("id", "owner", "tags", "target", "quantity", "reward", "signature", "format", "last_tx", "data_size", "data_root")
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    LAST_TX_FIELD_NUMBER: _ClassVar[int]
    DATA_SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_ROOT_FIELD_NUMBER: _ClassVar[int]
    id: str
    owner: str
    tags: _containers.RepeatedCompositeFieldContainer[ArweaveTag]
    target: str
    quantity: str
    reward: str
    signature: str
    format: int
    last_tx: str
    data_size: str
    data_root: str
    def __init__(self, id: _Optional[str] = ..., owner: _Optional[str] = ..., tags: _Optional[_Iterable[_Union[ArweaveTag, _Mapping]]] = ..., target: _Optional[str] = ..., quantity: _Optional[str] = ..., reward: _Optional[str] = ..., signature: _Optional[str] = ..., format: _Optional[int] = ..., last_tx: _Optional[str] = ..., data_size: _Optional[str] = ..., data_root: _Optional[str] = ...) -> None: ...

class ArweaveTag(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
