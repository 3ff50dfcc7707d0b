import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FailureKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_KIND_UNSPECIFIED: _ClassVar[FailureKind]
    FAILURE_KIND_MODEL: _ClassVar[FailureKind]
    FAILURE_KIND_SERVER: _ClassVar[FailureKind]
    FAILURE_KIND_TRANSIENT: _ClassVar[FailureKind]
FAILURE_KIND_UNSPECIFIED: FailureKind
FAILURE_KIND_MODEL: FailureKind
FAILURE_KIND_SERVER: FailureKind
FAILURE_KIND_TRANSIENT: FailureKind

class GetCallerRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Caller(_message.Message):
    __slots__ = ("project_id", "key_id", "kind", "user", "admin")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    key_id: str
    kind: str
    user: str
    admin: bool
    def __init__(self, project_id: _Optional[str] = ..., key_id: _Optional[str] = ..., kind: _Optional[str] = ..., user: _Optional[str] = ..., admin: _Optional[bool] = ...) -> None: ...

class ListProjectsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListProjectsResponse(_message.Message):
    __slots__ = ("projects",)
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    projects: _containers.RepeatedCompositeFieldContainer[Project]
    def __init__(self, projects: _Optional[_Iterable[_Union[Project, _Mapping]]] = ...) -> None: ...

class GetQueueRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class Queue(_message.Message):
    __slots__ = ("lines",)
    LINES_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[QueueLine]
    def __init__(self, lines: _Optional[_Iterable[_Union[QueueLine, _Mapping]]] = ...) -> None: ...

class QueueLine(_message.Message):
    __slots__ = ("project_id", "model_id", "model", "priority", "pending", "processing", "oldest_pending_at")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_FIELD_NUMBER: _ClassVar[int]
    OLDEST_PENDING_AT_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    model_id: str
    model: str
    priority: str
    pending: int
    processing: int
    oldest_pending_at: _timestamp_pb2.Timestamp
    def __init__(self, project_id: _Optional[str] = ..., model_id: _Optional[str] = ..., model: _Optional[str] = ..., priority: _Optional[str] = ..., pending: _Optional[int] = ..., processing: _Optional[int] = ..., oldest_pending_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateProjectRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class Project(_message.Message):
    __slots__ = ("id", "name", "created_at", "permanent_urls")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PERMANENT_URLS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    created_at: _timestamp_pb2.Timestamp
    permanent_urls: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., permanent_urls: _Optional[bool] = ...) -> None: ...

class UpdateProjectRequest(_message.Message):
    __slots__ = ("id", "permanent_urls")
    ID_FIELD_NUMBER: _ClassVar[int]
    PERMANENT_URLS_FIELD_NUMBER: _ClassVar[int]
    id: str
    permanent_urls: bool
    def __init__(self, id: _Optional[str] = ..., permanent_urls: _Optional[bool] = ...) -> None: ...

class CreateKeyRequest(_message.Message):
    __slots__ = ("project_id", "name", "kind", "user", "rate_limit")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    name: str
    kind: str
    user: str
    rate_limit: RateLimit
    def __init__(self, project_id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[str] = ..., user: _Optional[str] = ..., rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ...) -> None: ...

class RateLimit(_message.Message):
    __slots__ = ("requests_per_second", "burst")
    REQUESTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    requests_per_second: float
    burst: int
    def __init__(self, requests_per_second: _Optional[float] = ..., burst: _Optional[int] = ...) -> None: ...

class UpdateKeyRequest(_message.Message):
    __slots__ = ("id", "name", "rate_limit")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    rate_limit: RateLimit
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ...) -> None: ...

class ApiKey(_message.Message):
    __slots__ = ("id", "project_id", "name", "kind", "user", "key", "hint", "created_at", "revoked_at", "rate_limit")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    id: str
    project_id: str
    name: str
    kind: str
    user: str
    key: str
    hint: str
    created_at: _timestamp_pb2.Timestamp
    revoked_at: _timestamp_pb2.Timestamp
    rate_limit: RateLimit
    def __init__(self, id: _Optional[str] = ..., project_id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[str] = ..., user: _Optional[str] = ..., key: _Optional[str] = ..., hint: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[ApiKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[ApiKey, _Mapping]]] = ...) -> None: ...

class RevokeKeyRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("daily", "monthly")
    DAILY_FIELD_NUMBER: _ClassVar[int]
    MONTHLY_FIELD_NUMBER: _ClassVar[int]
    daily: int
    monthly: int
    def __init__(self, daily: _Optional[int] = ..., monthly: _Optional[int] = ...) -> None: ...

class SetUserLimitsRequest(_message.Message):
    __slots__ = ("user", "model", "daily", "monthly")
    USER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DAILY_FIELD_NUMBER: _ClassVar[int]
    MONTHLY_FIELD_NUMBER: _ClassVar[int]
    user: str
    model: str
    daily: int
    monthly: int
    def __init__(self, user: _Optional[str] = ..., model: _Optional[str] = ..., daily: _Optional[int] = ..., monthly: _Optional[int] = ...) -> None: ...

class UserLimits(_message.Message):
    __slots__ = ("user", "model", "daily", "monthly")
    USER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DAILY_FIELD_NUMBER: _ClassVar[int]
    MONTHLY_FIELD_NUMBER: _ClassVar[int]
    user: str
    model: str
    daily: int
    monthly: int
    def __init__(self, user: _Optional[str] = ..., model: _Optional[str] = ..., daily: _Optional[int] = ..., monthly: _Optional[int] = ...) -> None: ...

class GetRemainingGenerationsRequest(_message.Message):
    __slots__ = ("user", "model")
    USER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    user: str
    model: str
    def __init__(self, user: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class RemainingGenerations(_message.Message):
    __slots__ = ("remaining", "remaining_this_month", "daily_reset_at", "monthly_reset_at")
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    REMAINING_THIS_MONTH_FIELD_NUMBER: _ClassVar[int]
    DAILY_RESET_AT_FIELD_NUMBER: _ClassVar[int]
    MONTHLY_RESET_AT_FIELD_NUMBER: _ClassVar[int]
    remaining: int
    remaining_this_month: int
    daily_reset_at: _timestamp_pb2.Timestamp
    monthly_reset_at: _timestamp_pb2.Timestamp
    def __init__(self, remaining: _Optional[int] = ..., remaining_this_month: _Optional[int] = ..., daily_reset_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., monthly_reset_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AddCreditsRequest(_message.Message):
    __slots__ = ("user", "amount")
    USER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    user: str
    amount: int
    def __init__(self, user: _Optional[str] = ..., amount: _Optional[int] = ...) -> None: ...

class GetCreditsRequest(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: str
    def __init__(self, user: _Optional[str] = ...) -> None: ...

class CreditBalance(_message.Message):
    __slots__ = ("user", "balance")
    USER_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    user: str
    balance: int
    def __init__(self, user: _Optional[str] = ..., balance: _Optional[int] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("user", "model", "to")
    USER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    user: str
    model: str
    to: str
    def __init__(self, user: _Optional[str] = ..., model: _Optional[str] = ..., to: _Optional[str] = ..., **kwargs) -> None: ...

class UsageCounts(_message.Message):
    __slots__ = ("generations", "images", "failed")
    GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    generations: int
    images: int
    failed: int
    def __init__(self, generations: _Optional[int] = ..., images: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class UsageDay(_message.Message):
    __slots__ = ("date", "generations", "images", "failed")
    DATE_FIELD_NUMBER: _ClassVar[int]
    GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    date: str
    generations: int
    images: int
    failed: int
    def __init__(self, date: _Optional[str] = ..., generations: _Optional[int] = ..., images: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("to", "days", "totals")
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    to: str
    days: _containers.RepeatedCompositeFieldContainer[UsageDay]
    totals: UsageCounts
    def __init__(self, to: _Optional[str] = ..., days: _Optional[_Iterable[_Union[UsageDay, _Mapping]]] = ..., totals: _Optional[_Union[UsageCounts, _Mapping]] = ..., **kwargs) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CreateModelRequest(_message.Message):
    __slots__ = ("name", "provider", "upstream_model", "servers", "user_limits", "price_per_image", "content_credentials", "native_policy", "max_outputs_per_image", "project_id", "comfyui")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_MODEL_FIELD_NUMBER: _ClassVar[int]
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    USER_LIMITS_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    NATIVE_POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUTS_PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    COMFYUI_FIELD_NUMBER: _ClassVar[int]
    name: str
    provider: str
    upstream_model: str
    servers: _containers.RepeatedCompositeFieldContainer[ServerSpec]
    user_limits: Limits
    price_per_image: int
    content_credentials: bool
    native_policy: NativePolicy
    max_outputs_per_image: int
    project_id: str
    comfyui: ComfyWorkflow
    def __init__(self, name: _Optional[str] = ..., provider: _Optional[str] = ..., upstream_model: _Optional[str] = ..., servers: _Optional[_Iterable[_Union[ServerSpec, _Mapping]]] = ..., user_limits: _Optional[_Union[Limits, _Mapping]] = ..., price_per_image: _Optional[int] = ..., content_credentials: _Optional[bool] = ..., native_policy: _Optional[_Union[NativePolicy, _Mapping]] = ..., max_outputs_per_image: _Optional[int] = ..., project_id: _Optional[str] = ..., comfyui: _Optional[_Union[ComfyWorkflow, _Mapping]] = ...) -> None: ...

class ComfyWorkflow(_message.Message):
    __slots__ = ("workflow", "prompt", "negative_prompt", "seed", "width", "height", "n", "images", "mask", "allow_app_workflows", "allowed_node_classes")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    ALLOW_APP_WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_NODE_CLASSES_FIELD_NUMBER: _ClassVar[int]
    workflow: _struct_pb2.Struct
    prompt: ComfyInput
    negative_prompt: ComfyInput
    seed: ComfyInput
    width: ComfyInput
    height: ComfyInput
    n: ComfyInput
    images: _containers.RepeatedCompositeFieldContainer[ComfyInput]
    mask: ComfyInput
    allow_app_workflows: bool
    allowed_node_classes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, workflow: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., prompt: _Optional[_Union[ComfyInput, _Mapping]] = ..., negative_prompt: _Optional[_Union[ComfyInput, _Mapping]] = ..., seed: _Optional[_Union[ComfyInput, _Mapping]] = ..., width: _Optional[_Union[ComfyInput, _Mapping]] = ..., height: _Optional[_Union[ComfyInput, _Mapping]] = ..., n: _Optional[_Union[ComfyInput, _Mapping]] = ..., images: _Optional[_Iterable[_Union[ComfyInput, _Mapping]]] = ..., mask: _Optional[_Union[ComfyInput, _Mapping]] = ..., allow_app_workflows: _Optional[bool] = ..., allowed_node_classes: _Optional[_Iterable[str]] = ...) -> None: ...

class ComfyInput(_message.Message):
    __slots__ = ("node", "input")
    NODE_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    node: str
    input: str
    def __init__(self, node: _Optional[str] = ..., input: _Optional[str] = ...) -> None: ...

class UpdateModelRequest(_message.Message):
    __slots__ = ("name", "user_limits", "price_per_image", "content_credentials", "native_policy", "max_outputs_per_image", "comfyui")
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_LIMITS_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    NATIVE_POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUTS_PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    COMFYUI_FIELD_NUMBER: _ClassVar[int]
    name: str
    user_limits: Limits
    price_per_image: int
    content_credentials: bool
    native_policy: NativePolicy
    max_outputs_per_image: int
    comfyui: ComfyWorkflow
    def __init__(self, name: _Optional[str] = ..., user_limits: _Optional[_Union[Limits, _Mapping]] = ..., price_per_image: _Optional[int] = ..., content_credentials: _Optional[bool] = ..., native_policy: _Optional[_Union[NativePolicy, _Mapping]] = ..., max_outputs_per_image: _Optional[int] = ..., comfyui: _Optional[_Union[ComfyWorkflow, _Mapping]] = ...) -> None: ...

class NativePolicy(_message.Message):
    __slots__ = ("allowed", "denied", "any_version", "reset")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    DENIED_FIELD_NUMBER: _ClassVar[int]
    ANY_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    allowed: _containers.RepeatedScalarFieldContainer[str]
    denied: _containers.RepeatedScalarFieldContainer[str]
    any_version: bool
    reset: bool
    def __init__(self, allowed: _Optional[_Iterable[str]] = ..., denied: _Optional[_Iterable[str]] = ..., any_version: _Optional[bool] = ..., reset: _Optional[bool] = ...) -> None: ...

class ServerSpec(_message.Message):
    __slots__ = ("url", "api_key", "max_concurrency")
    URL_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    url: str
    api_key: str
    max_concurrency: int
    def __init__(self, url: _Optional[str] = ..., api_key: _Optional[str] = ..., max_concurrency: _Optional[int] = ...) -> None: ...

class ReplaceModelServersRequest(_message.Message):
    __slots__ = ("name", "servers", "project_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    servers: _containers.RepeatedCompositeFieldContainer[ServerSpec]
    project_id: str
    def __init__(self, name: _Optional[str] = ..., servers: _Optional[_Iterable[_Union[ServerSpec, _Mapping]]] = ..., project_id: _Optional[str] = ...) -> None: ...

class DeleteModelRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetWebhookSecretRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WebhookSecret(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("id", "project_id", "name", "provider", "upstream_model", "servers", "created_at", "user_limits", "price_per_image", "content_credentials", "native_policy", "max_outputs_per_image", "comfyui")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_MODEL_FIELD_NUMBER: _ClassVar[int]
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    USER_LIMITS_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    NATIVE_POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUTS_PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    COMFYUI_FIELD_NUMBER: _ClassVar[int]
    id: str
    project_id: str
    name: str
    provider: str
    upstream_model: str
    servers: _containers.RepeatedCompositeFieldContainer[ModelServer]
    created_at: _timestamp_pb2.Timestamp
    user_limits: Limits
    price_per_image: int
    content_credentials: bool
    native_policy: NativePolicy
    max_outputs_per_image: int
    comfyui: ComfyWorkflow
    def __init__(self, id: _Optional[str] = ..., project_id: _Optional[str] = ..., name: _Optional[str] = ..., provider: _Optional[str] = ..., upstream_model: _Optional[str] = ..., servers: _Optional[_Iterable[_Union[ModelServer, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., user_limits: _Optional[_Union[Limits, _Mapping]] = ..., price_per_image: _Optional[int] = ..., content_credentials: _Optional[bool] = ..., native_policy: _Optional[_Union[NativePolicy, _Mapping]] = ..., max_outputs_per_image: _Optional[int] = ..., comfyui: _Optional[_Union[ComfyWorkflow, _Mapping]] = ...) -> None: ...

class ModelServer(_message.Message):
    __slots__ = ("id", "url", "max_concurrency", "status", "outstanding", "last_error")
    ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    url: str
    max_concurrency: int
    status: str
    outstanding: int
    last_error: str
    def __init__(self, id: _Optional[str] = ..., url: _Optional[str] = ..., max_concurrency: _Optional[int] = ..., status: _Optional[str] = ..., outstanding: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class AuthenticateRequest(_message.Message):
    __slots__ = ("api_key",)
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    api_key: str
    def __init__(self, api_key: _Optional[str] = ...) -> None: ...

class Principal(_message.Message):
    __slots__ = ("project_id", "key_id", "admin", "kind", "user", "permanent_urls")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    PERMANENT_URLS_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    key_id: str
    admin: bool
    kind: str
    user: str
    permanent_urls: bool
    def __init__(self, project_id: _Optional[str] = ..., key_id: _Optional[str] = ..., admin: _Optional[bool] = ..., kind: _Optional[str] = ..., user: _Optional[str] = ..., permanent_urls: _Optional[bool] = ...) -> None: ...

class EnqueueGenerationRequest(_message.Message):
    __slots__ = ("project_id", "spec", "idempotency_key", "request_hash", "deadline", "claim_for_worker", "lease_seconds", "api_key", "inputs", "request_body", "generation_id", "stored_again")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_HASH_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    CLAIM_FOR_WORKER_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BODY_FIELD_NUMBER: _ClassVar[int]
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    STORED_AGAIN_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    spec: GenerationSpec
    idempotency_key: str
    request_hash: bytes
    deadline: _timestamp_pb2.Timestamp
    claim_for_worker: str
    lease_seconds: float
    api_key: str
    inputs: _containers.RepeatedCompositeFieldContainer[InputImageRecord]
    request_body: bytes
    generation_id: str
    stored_again: bool
    def __init__(self, project_id: _Optional[str] = ..., spec: _Optional[_Union[GenerationSpec, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., request_hash: _Optional[bytes] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., claim_for_worker: _Optional[str] = ..., lease_seconds: _Optional[float] = ..., api_key: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[InputImageRecord, _Mapping]]] = ..., request_body: _Optional[bytes] = ..., generation_id: _Optional[str] = ..., stored_again: _Optional[bool] = ...) -> None: ...

class EnqueueGenerationResponse(_message.Message):
    __slots__ = ("generation", "replayed", "job", "principal")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    generation: GenerationRecord
    replayed: bool
    job: Job
    principal: Principal
    def __init__(self, generation: _Optional[_Union[GenerationRecord, _Mapping]] = ..., replayed: _Optional[bool] = ..., job: _Optional[_Union[Job, _Mapping]] = ..., principal: _Optional[_Union[Principal, _Mapping]] = ...) -> None: ...

class ClaimJobsRequest(_message.Message):
    __slots__ = ("worker_id", "max_jobs", "lease_seconds", "wait_seconds")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_JOBS_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    max_jobs: int
    lease_seconds: float
    wait_seconds: float
    def __init__(self, worker_id: _Optional[str] = ..., max_jobs: _Optional[int] = ..., lease_seconds: _Optional[float] = ..., wait_seconds: _Optional[float] = ...) -> None: ...

class ClaimJobsResponse(_message.Message):
    __slots__ = ("jobs", "probes")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    PROBES_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    probes: _containers.RepeatedCompositeFieldContainer[ServerTarget]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., probes: _Optional[_Iterable[_Union[ServerTarget, _Mapping]]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("generation", "server", "attempt", "deadline", "content_credentials", "max_outputs_per_image")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUTS_PER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    generation: GenerationRecord
    server: ServerTarget
    attempt: int
    deadline: _timestamp_pb2.Timestamp
    content_credentials: bool
    max_outputs_per_image: int
    def __init__(self, generation: _Optional[_Union[GenerationRecord, _Mapping]] = ..., server: _Optional[_Union[ServerTarget, _Mapping]] = ..., attempt: _Optional[int] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., content_credentials: _Optional[bool] = ..., max_outputs_per_image: _Optional[int] = ...) -> None: ...

class ServerTarget(_message.Message):
    __slots__ = ("id", "url", "api_key", "provider", "upstream_model", "private_ok", "max_concurrency", "comfyui")
    ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_MODEL_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_OK_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    COMFYUI_FIELD_NUMBER: _ClassVar[int]
    id: str
    url: str
    api_key: str
    provider: str
    upstream_model: str
    private_ok: bool
    max_concurrency: int
    comfyui: str
    def __init__(self, id: _Optional[str] = ..., url: _Optional[str] = ..., api_key: _Optional[str] = ..., provider: _Optional[str] = ..., upstream_model: _Optional[str] = ..., private_ok: _Optional[bool] = ..., max_concurrency: _Optional[int] = ..., comfyui: _Optional[str] = ...) -> None: ...

class RenewLeasesRequest(_message.Message):
    __slots__ = ("worker_id", "generation_ids", "lease_seconds")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_IDS_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    generation_ids: _containers.RepeatedScalarFieldContainer[str]
    lease_seconds: float
    def __init__(self, worker_id: _Optional[str] = ..., generation_ids: _Optional[_Iterable[str]] = ..., lease_seconds: _Optional[float] = ...) -> None: ...

class RenewLeasesResponse(_message.Message):
    __slots__ = ("lost_generation_ids",)
    LOST_GENERATION_IDS_FIELD_NUMBER: _ClassVar[int]
    lost_generation_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, lost_generation_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CompleteJobRequest(_message.Message):
    __slots__ = ("worker_id", "generation_id", "server_id", "images", "archive_to_arweave", "stored_again")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_TO_ARWEAVE_FIELD_NUMBER: _ClassVar[int]
    STORED_AGAIN_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    generation_id: str
    server_id: str
    images: _containers.RepeatedCompositeFieldContainer[ImageRecord]
    archive_to_arweave: bool
    stored_again: bool
    def __init__(self, worker_id: _Optional[str] = ..., generation_id: _Optional[str] = ..., server_id: _Optional[str] = ..., images: _Optional[_Iterable[_Union[ImageRecord, _Mapping]]] = ..., archive_to_arweave: _Optional[bool] = ..., stored_again: _Optional[bool] = ...) -> None: ...

class CompleteJobsRequest(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[CompleteJobRequest]
    def __init__(self, jobs: _Optional[_Iterable[_Union[CompleteJobRequest, _Mapping]]] = ...) -> None: ...

class CompleteJobsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CompletedJob]
    def __init__(self, results: _Optional[_Iterable[_Union[CompletedJob, _Mapping]]] = ...) -> None: ...

class CompletedJob(_message.Message):
    __slots__ = ("generation_id", "generation", "code", "message")
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    generation_id: str
    generation: GenerationRecord
    code: int
    message: str
    def __init__(self, generation_id: _Optional[str] = ..., generation: _Optional[_Union[GenerationRecord, _Mapping]] = ..., code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class FailJobRequest(_message.Message):
    __slots__ = ("worker_id", "generation_id", "server_id", "reason", "kind")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    generation_id: str
    server_id: str
    reason: str
    kind: FailureKind
    def __init__(self, worker_id: _Optional[str] = ..., generation_id: _Optional[str] = ..., server_id: _Optional[str] = ..., reason: _Optional[str] = ..., kind: _Optional[_Union[FailureKind, str]] = ...) -> None: ...

class ReleaseJobsRequest(_message.Message):
    __slots__ = ("worker_id", "generation_ids")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_IDS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    generation_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, worker_id: _Optional[str] = ..., generation_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ReportProbeRequest(_message.Message):
    __slots__ = ("server_id", "ok", "error")
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    server_id: str
    ok: bool
    error: str
    def __init__(self, server_id: _Optional[str] = ..., ok: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class CancelGenerationRequest(_message.Message):
    __slots__ = ("project_id", "id", "reason")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    id: str
    reason: str
    def __init__(self, project_id: _Optional[str] = ..., id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ClaimWebhookDeliveriesRequest(_message.Message):
    __slots__ = ("max_deliveries", "lease_seconds", "wait_seconds")
    MAX_DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    max_deliveries: int
    lease_seconds: float
    wait_seconds: float
    def __init__(self, max_deliveries: _Optional[int] = ..., lease_seconds: _Optional[float] = ..., wait_seconds: _Optional[float] = ...) -> None: ...

class ClaimWebhookDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries",)
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[WebhookDelivery]
    def __init__(self, deliveries: _Optional[_Iterable[_Union[WebhookDelivery, _Mapping]]] = ...) -> None: ...

class WebhookDelivery(_message.Message):
    __slots__ = ("id", "url", "secret", "attempt", "generation", "permanent_urls", "event")
    ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    PERMANENT_URLS_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    url: str
    secret: str
    attempt: int
    generation: GenerationRecord
    permanent_urls: bool
    event: str
    def __init__(self, id: _Optional[str] = ..., url: _Optional[str] = ..., secret: _Optional[str] = ..., attempt: _Optional[int] = ..., generation: _Optional[_Union[GenerationRecord, _Mapping]] = ..., permanent_urls: _Optional[bool] = ..., event: _Optional[str] = ...) -> None: ...

class ReportWebhookDeliveryRequest(_message.Message):
    __slots__ = ("id", "delivered", "status_code", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    delivered: bool
    status_code: int
    error: str
    def __init__(self, id: _Optional[str] = ..., delivered: _Optional[bool] = ..., status_code: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class GetGenerationRequest(_message.Message):
    __slots__ = ("project_id", "id")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    id: str
    def __init__(self, project_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class WatchGenerationRequest(_message.Message):
    __slots__ = ("project_id", "id", "terminal_only", "previews")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_ONLY_FIELD_NUMBER: _ClassVar[int]
    PREVIEWS_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    id: str
    terminal_only: bool
    previews: bool
    def __init__(self, project_id: _Optional[str] = ..., id: _Optional[str] = ..., terminal_only: _Optional[bool] = ..., previews: _Optional[bool] = ...) -> None: ...

class ReportProgressRequest(_message.Message):
    __slots__ = ("worker_id", "jobs")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    jobs: _containers.RepeatedCompositeFieldContainer[JobProgress]
    def __init__(self, worker_id: _Optional[str] = ..., jobs: _Optional[_Iterable[_Union[JobProgress, _Mapping]]] = ...) -> None: ...

class JobProgress(_message.Message):
    __slots__ = ("generation_id", "progress", "step", "steps", "preview", "preview_content_type")
    GENERATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    generation_id: str
    progress: float
    step: int
    steps: int
    preview: bytes
    preview_content_type: str
    def __init__(self, generation_id: _Optional[str] = ..., progress: _Optional[float] = ..., step: _Optional[int] = ..., steps: _Optional[int] = ..., preview: _Optional[bytes] = ..., preview_content_type: _Optional[str] = ...) -> None: ...

class ListGenerationsRequest(_message.Message):
    __slots__ = ("project_id", "user", "model", "status", "id", "page_size", "page_token")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    user: str
    model: str
    status: str
    id: str
    page_size: int
    page_token: str
    def __init__(self, project_id: _Optional[str] = ..., user: _Optional[str] = ..., model: _Optional[str] = ..., status: _Optional[str] = ..., id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListGenerationsResponse(_message.Message):
    __slots__ = ("generations", "next_page_token", "previous_page_token", "page_size")
    GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    generations: _containers.RepeatedCompositeFieldContainer[GenerationRecord]
    next_page_token: str
    previous_page_token: str
    page_size: int
    def __init__(self, generations: _Optional[_Iterable[_Union[GenerationRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., previous_page_token: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class DeleteGenerationRequest(_message.Message):
    __slots__ = ("project_id", "id")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    id: str
    def __init__(self, project_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class DeleteGenerationResponse(_message.Message):
    __slots__ = ("orphaned_keys",)
    ORPHANED_KEYS_FIELD_NUMBER: _ClassVar[int]
    orphaned_keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, orphaned_keys: _Optional[_Iterable[str]] = ...) -> None: ...

class ReportUnusedBlobsRequest(_message.Message):
    __slots__ = ("storage_keys", "at_once")
    STORAGE_KEYS_FIELD_NUMBER: _ClassVar[int]
    AT_ONCE_FIELD_NUMBER: _ClassVar[int]
    storage_keys: _containers.RepeatedScalarFieldContainer[str]
    at_once: bool
    def __init__(self, storage_keys: _Optional[_Iterable[str]] = ..., at_once: _Optional[bool] = ...) -> None: ...

class ClaimUnusedBlobsRequest(_message.Message):
    __slots__ = ("max_keys",)
    MAX_KEYS_FIELD_NUMBER: _ClassVar[int]
    max_keys: int
    def __init__(self, max_keys: _Optional[int] = ...) -> None: ...

class ClaimUnusedBlobsResponse(_message.Message):
    __slots__ = ("unused_since", "at_once")
    class UnusedSinceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _timestamp_pb2.Timestamp
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
    UNUSED_SINCE_FIELD_NUMBER: _ClassVar[int]
    AT_ONCE_FIELD_NUMBER: _ClassVar[int]
    unused_since: _containers.MessageMap[str, _timestamp_pb2.Timestamp]
    at_once: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, unused_since: _Optional[_Mapping[str, _timestamp_pb2.Timestamp]] = ..., at_once: _Optional[_Iterable[str]] = ...) -> None: ...

class EndBlobSweepRequest(_message.Message):
    __slots__ = ("deleted", "kept_keys")
    class DeletedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _timestamp_pb2.Timestamp
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
    DELETED_FIELD_NUMBER: _ClassVar[int]
    KEPT_KEYS_FIELD_NUMBER: _ClassVar[int]
    deleted: _containers.MessageMap[str, _timestamp_pb2.Timestamp]
    kept_keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, deleted: _Optional[_Mapping[str, _timestamp_pb2.Timestamp]] = ..., kept_keys: _Optional[_Iterable[str]] = ...) -> None: ...

class BlobsBeingSweptRequest(_message.Message):
    __slots__ = ("storage_keys",)
    STORAGE_KEYS_FIELD_NUMBER: _ClassVar[int]
    storage_keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, storage_keys: _Optional[_Iterable[str]] = ...) -> None: ...

class BlobsBeingSweptResponse(_message.Message):
    __slots__ = ("storage_keys",)
    STORAGE_KEYS_FIELD_NUMBER: _ClassVar[int]
    storage_keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, storage_keys: _Optional[_Iterable[str]] = ...) -> None: ...

class GenerationSpec(_message.Message):
    __slots__ = ("model", "user", "prompt", "negative_prompt", "n", "width", "height", "seed", "priority", "callback_url", "version", "input", "webhook_events_filter")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_EVENTS_FILTER_FIELD_NUMBER: _ClassVar[int]
    model: str
    user: str
    prompt: str
    negative_prompt: str
    n: int
    width: int
    height: int
    seed: int
    priority: str
    callback_url: str
    version: str
    input: str
    webhook_events_filter: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model: _Optional[str] = ..., user: _Optional[str] = ..., prompt: _Optional[str] = ..., negative_prompt: _Optional[str] = ..., n: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., seed: _Optional[int] = ..., priority: _Optional[str] = ..., callback_url: _Optional[str] = ..., version: _Optional[str] = ..., input: _Optional[str] = ..., webhook_events_filter: _Optional[_Iterable[str]] = ...) -> None: ...

class GenerationRecord(_message.Message):
    __slots__ = ("id", "project_id", "model_id", "server_id", "status", "reason", "spec", "images", "created_at", "updated_at", "inputs", "request_body", "queue_position", "progress", "step", "steps", "started_at", "completed_at", "preview", "preview_content_type", "trace_parent")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BODY_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TRACE_PARENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    project_id: str
    model_id: str
    server_id: str
    status: str
    reason: str
    spec: GenerationSpec
    images: _containers.RepeatedCompositeFieldContainer[ImageRecord]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    inputs: _containers.RepeatedCompositeFieldContainer[InputImageRecord]
    request_body: bytes
    queue_position: int
    progress: float
    step: int
    steps: int
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    preview: bytes
    preview_content_type: str
    trace_parent: str
    def __init__(self, id: _Optional[str] = ..., project_id: _Optional[str] = ..., model_id: _Optional[str] = ..., server_id: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., spec: _Optional[_Union[GenerationSpec, _Mapping]] = ..., images: _Optional[_Iterable[_Union[ImageRecord, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., inputs: _Optional[_Iterable[_Union[InputImageRecord, _Mapping]]] = ..., request_body: _Optional[bytes] = ..., queue_position: _Optional[int] = ..., progress: _Optional[float] = ..., step: _Optional[int] = ..., steps: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., preview: _Optional[bytes] = ..., preview_content_type: _Optional[str] = ..., trace_parent: _Optional[str] = ...) -> None: ...

class InputImageRecord(_message.Message):
    __slots__ = ("role", "pointer", "storage_key", "sha256", "content_type", "size_bytes", "width", "height")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    POINTER_FIELD_NUMBER: _ClassVar[int]
    STORAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    role: str
    pointer: str
    storage_key: str
    sha256: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    def __init__(self, role: _Optional[str] = ..., pointer: _Optional[str] = ..., storage_key: _Optional[str] = ..., sha256: _Optional[str] = ..., content_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class ImageRecord(_message.Message):
    __slots__ = ("id", "index", "storage_key", "sha256", "content_type", "size_bytes", "width", "height", "manifest_label", "arweave", "permanent_key", "variants")
    ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STORAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_LABEL_FIELD_NUMBER: _ClassVar[int]
    ARWEAVE_FIELD_NUMBER: _ClassVar[int]
    PERMANENT_KEY_FIELD_NUMBER: _ClassVar[int]
    VARIANTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    index: int
    storage_key: str
    sha256: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    manifest_label: str
    arweave: ArweaveArchive
    permanent_key: str
    variants: bool
    def __init__(self, id: _Optional[str] = ..., index: _Optional[int] = ..., storage_key: _Optional[str] = ..., sha256: _Optional[str] = ..., content_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., manifest_label: _Optional[str] = ..., arweave: _Optional[_Union[ArweaveArchive, _Mapping]] = ..., permanent_key: _Optional[str] = ..., variants: _Optional[bool] = ...) -> None: ...

class ArweaveArchive(_message.Message):
    __slots__ = ("state", "transaction_json", "url", "last_error", "attempts", "storage_key", "content_type")
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_JSON_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    STORAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    state: str
    transaction_json: str
    url: str
    last_error: str
    attempts: int
    storage_key: str
    content_type: str
    def __init__(self, state: _Optional[str] = ..., transaction_json: _Optional[str] = ..., url: _Optional[str] = ..., last_error: _Optional[str] = ..., attempts: _Optional[int] = ..., storage_key: _Optional[str] = ..., content_type: _Optional[str] = ...) -> None: ...

class ClaimArweaveArchivesRequest(_message.Message):
    __slots__ = ("max_archives", "lease_seconds", "wait_seconds")
    MAX_ARCHIVES_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    max_archives: int
    lease_seconds: float
    wait_seconds: float
    def __init__(self, max_archives: _Optional[int] = ..., lease_seconds: _Optional[float] = ..., wait_seconds: _Optional[float] = ...) -> None: ...

class ClaimArweaveArchivesResponse(_message.Message):
    __slots__ = ("archives",)
    ARCHIVES_FIELD_NUMBER: _ClassVar[int]
    archives: _containers.RepeatedCompositeFieldContainer[ArweaveArchive]
    def __init__(self, archives: _Optional[_Iterable[_Union[ArweaveArchive, _Mapping]]] = ...) -> None: ...

class ReportArweaveArchiveRequest(_message.Message):
    __slots__ = ("storage_key", "state", "transaction_json", "url", "error", "retry_in_seconds")
    STORAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_JSON_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RETRY_IN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    storage_key: str
    state: str
    transaction_json: str
    url: str
    error: str
    retry_in_seconds: float
    def __init__(self, storage_key: _Optional[str] = ..., state: _Optional[str] = ..., transaction_json: _Optional[str] = ..., url: _Optional[str] = ..., error: _Optional[str] = ..., retry_in_seconds: _Optional[float] = ...) -> None: ...

class ResolvePermanentImageRequest(_message.Message):
    __slots__ = ("permanent_key",)
    PERMANENT_KEY_FIELD_NUMBER: _ClassVar[int]
    permanent_key: str
    def __init__(self, permanent_key: _Optional[str] = ...) -> None: ...

class RecordUploadRequest(_message.Message):
    __slots__ = ("project_id", "image", "ttl_seconds", "stored_again")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STORED_AGAIN_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    image: InputImageRecord
    ttl_seconds: float
    stored_again: bool
    def __init__(self, project_id: _Optional[str] = ..., image: _Optional[_Union[InputImageRecord, _Mapping]] = ..., ttl_seconds: _Optional[float] = ..., stored_again: _Optional[bool] = ...) -> None: ...

class UploadRecord(_message.Message):
    __slots__ = ("id", "project_id", "image", "created_at", "expires_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    project_id: str
    image: InputImageRecord
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., project_id: _Optional[str] = ..., image: _Optional[_Union[InputImageRecord, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetUploadsRequest(_message.Message):
    __slots__ = ("project_id", "ids")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project_id: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetUploadsResponse(_message.Message):
    __slots__ = ("uploads",)
    UPLOADS_FIELD_NUMBER: _ClassVar[int]
    uploads: _containers.RepeatedCompositeFieldContainer[UploadRecord]
    def __init__(self, uploads: _Optional[_Iterable[_Union[UploadRecord, _Mapping]]] = ...) -> None: ...

class EraseUserRequest(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: str
    def __init__(self, user: _Optional[str] = ...) -> None: ...

class ErasedUser(_message.Message):
    __slots__ = ("user", "generations", "images", "arweave_copies")
    USER_FIELD_NUMBER: _ClassVar[int]
    GENERATIONS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    ARWEAVE_COPIES_FIELD_NUMBER: _ClassVar[int]
    user: str
    generations: int
    images: int
    arweave_copies: _containers.RepeatedCompositeFieldContainer[ArweaveCopy]
    def __init__(self, user: _Optional[str] = ..., generations: _Optional[int] = ..., images: _Optional[int] = ..., arweave_copies: _Optional[_Iterable[_Union[ArweaveCopy, _Mapping]]] = ...) -> None: ...

class ArweaveCopy(_message.Message):
    __slots__ = ("transaction_id", "url")
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    url: str
    def __init__(self, transaction_id: _Optional[str] = ..., url: _Optional[str] = ...) -> None: ...

class AdoptOrphanBlobsRequest(_message.Message):
    __slots__ = ("storage_keys",)
    STORAGE_KEYS_FIELD_NUMBER: _ClassVar[int]
    storage_keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, storage_keys: _Optional[_Iterable[str]] = ...) -> None: ...

class AdoptOrphanBlobsResponse(_message.Message):
    __slots__ = ("storage_keys",)
    STORAGE_KEYS_FIELD_NUMBER: _ClassVar[int]
    storage_keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, storage_keys: _Optional[_Iterable[str]] = ...) -> None: ...
