"""Maps catalog protos to domain calls and back; no rules live here."""

from __future__ import annotations

import datetime as dt
import json

import grpc
from google.protobuf import empty_pb2, json_format, timestamp_pb2
from imagegen.catalog.v1 import catalog_pb2, catalog_pb2_grpc, gateway_check_pb2

from services.common.auth import bearer_key
from services.common.comfy_workflow import whole_numbers
from services.common.errors import HTTP_STATUS, RETRY_AFTER_KEY, DomainError

from . import native_policy
from .accounts import Accounts, Principal, check_max_outputs, held_to_key
from .domain import Catalog
from .records import inputs_from_row, spec_from_row
from .repository import UPLOAD_IMAGE_COLUMNS, Outcome, Row


def _timestamp(value) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def model_to_proto(row: Row) -> catalog_pb2.Model:
    return catalog_pb2.Model(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        provider=row["provider"],
        upstream_model=row["upstream_model"],
        servers=[
            catalog_pb2.ModelServer(
                id=s["id"],
                url=s["url"],
                max_concurrency=s["max_concurrency"],
                status="benched" if s["benched"] else "healthy",
                outstanding=s["outstanding"],
                last_error=s["last_error"],
            )
            for s in row["servers"]
        ],
        created_at=_timestamp(row["created_at"]),
        user_limits=catalog_pb2.Limits(daily=row["daily_limit"], monthly=row["monthly_limit"]),
        price_per_image=row["price_per_image"],
        content_credentials=row["content_credentials"],
        native_policy=_policy_to_proto(native_policy.effective(row)),
        max_outputs_per_image=row["max_outputs_per_image"],
        comfyui=_comfy_to_proto(row["comfyui"]) if row.get("comfyui") else None,
    )


def _comfy_to_proto(config: Row) -> catalog_pb2.ComfyWorkflow:
    return json_format.ParseDict(config, catalog_pb2.ComfyWorkflow())


def _comfy_asked(request) -> Row | None:
    """A create's ComfyUI workflow as stored: proto field names, the workflow's numbers as it wrote them."""
    if not request.HasField("comfyui"):
        return None
    config = json_format.MessageToDict(request.comfyui, preserving_proto_field_name=True)
    if "workflow" in config:
        config["workflow"] = whole_numbers(config["workflow"])
    return config


def _policy_to_proto(policy: Row) -> catalog_pb2.NativePolicy:
    return catalog_pb2.NativePolicy(
        allowed=policy["allowed"], denied=policy["denied"], any_version=policy["any_version"]
    )


def _policy_asked(request) -> tuple[Row | None] | None:
    """A create's or update's policy: None when not given, (None,) to go back to the provider's."""
    if not request.HasField("native_policy"):
        return None
    asked = request.native_policy
    if asked.reset:
        return (None,)
    return (native_policy.checked(list(asked.allowed), list(asked.denied), asked.any_version),)


def project_to_proto(row: Row) -> catalog_pb2.Project:
    return catalog_pb2.Project(
        id=row["id"],
        name=row["name"],
        created_at=_timestamp(row["created_at"]),
        permanent_urls=row["permanent_urls"],
    )


def image_to_proto(row: Row) -> catalog_pb2.ImageRecord:
    return catalog_pb2.ImageRecord(
        id=row["id"],
        index=row["idx"],
        storage_key=row["storage_key"],
        sha256=row["sha256"],
        content_type=row["content_type"],
        size_bytes=row["size_bytes"],
        width=row["width"],
        height=row["height"],
        manifest_label=row["manifest_label"],
        arweave=arweave_to_proto(row["arweave"], row) if row.get("arweave") else None,
        permanent_key=row["permanent_key"],
        variants=row["variants"],
    )


def arweave_to_proto(archive: Row, image: Row) -> catalog_pb2.ArweaveArchive:
    return catalog_pb2.ArweaveArchive(
        state=archive["state"],
        transaction_json=archive["transaction"] or "",
        url=archive["url"],
        last_error=archive["last_error"],
        attempts=archive["attempts"],
        storage_key=image["storage_key"],
        content_type=image["content_type"],
    )


def generation_to_proto(row: Row) -> catalog_pb2.GenerationRecord:
    return catalog_pb2.GenerationRecord(
        id=row["id"],
        project_id=row["project_id"],
        model_id=row["model_id"],
        server_id=row["server_id"],
        status=row["status"],
        reason=row["reason"],
        spec=spec_from_row(row),
        images=[image_to_proto(image) for image in row.get("images", ())],
        created_at=_timestamp(row["created_at"]),
        updated_at=_timestamp(row["updated_at"]),
        inputs=inputs_from_row(row),
        request_body=row["request_body"],
        queue_position=row.get("queue_position"),
        progress=row.get("progress"),
        step=row.get("step"),
        steps=row.get("steps"),
        started_at=_timestamp(row["started_at"]) if row.get("started_at") else None,
        completed_at=_timestamp(row["completed_at"]) if row.get("completed_at") else None,
        preview=row.get("preview"),
        preview_content_type=row.get("preview_content_type"),
        trace_parent=row["trace_parent"],
    )


def upload_to_proto(row: Row) -> catalog_pb2.UploadRecord:
    return catalog_pb2.UploadRecord(
        id=row["id"],
        project_id=row["project_id"],
        image=catalog_pb2.InputImageRecord(**{column: row[column] for column in UPLOAD_IMAGE_COLUMNS}),
        created_at=_timestamp(row["created_at"]),
        expires_at=_timestamp(row["expires_at"]),
    )


def _limits(limits: catalog_pb2.Limits | None) -> Row:
    if limits is None:
        return {"daily_limit": None, "monthly_limit": None}
    return {
        "daily_limit": limits.daily if limits.HasField("daily") else None,
        "monthly_limit": limits.monthly if limits.HasField("monthly") else None,
    }


def _server_specs(servers) -> list[Row]:
    return [{"url": s.url, "api_key": s.api_key, "max_concurrency": s.max_concurrency} for s in servers]


def _target(row: Row) -> catalog_pb2.ServerTarget:
    return catalog_pb2.ServerTarget(
        id=row["id"],
        url=row["url"],
        api_key=row["api_key"],
        provider=row["provider"],
        upstream_model=row["upstream_model"],
        private_ok=row["private_ok"],
        max_concurrency=row.get("max_concurrency", 0),
        comfyui=json.dumps(row["comfyui"]) if row.get("comfyui") else "",
    )


def principal_to_proto(principal: Principal) -> catalog_pb2.Principal:
    return catalog_pb2.Principal(
        project_id=principal.project_id,
        key_id=principal.key_id,
        admin=principal.admin,
        kind=principal.kind,
        user=principal.user,
        permanent_urls=principal.permanent_urls,
    )


def job_to_proto(job: Row) -> catalog_pb2.Job:
    answer = catalog_pb2.Job(
        generation=generation_to_proto(job["generation"]),
        server=_target(job["server"]),
        attempt=job["attempt"],
        content_credentials=job["server"]["content_credentials"],
        max_outputs_per_image=job["server"]["max_outputs_per_image"],
    )
    if job["deadline"] is not None:
        answer.deadline.FromDatetime(job["deadline"])
    return answer


_FAILURE_KINDS = {
    catalog_pb2.FAILURE_KIND_MODEL: "model",
    catalog_pb2.FAILURE_KIND_SERVER: "server",
    catalog_pb2.FAILURE_KIND_TRANSIENT: "transient",
}


def _completion(request: catalog_pb2.CompleteJobRequest) -> Outcome:
    return Outcome(
        request.generation_id,
        "completed",
        request.server_id,
        "",
        [_image_fields(image) for image in request.images],
        archive=request.archive_to_arweave,
        stored_again=request.stored_again,
    )


def _image_fields(image: catalog_pb2.ImageRecord) -> Row:
    return {
        "id": image.id,
        "index": image.index,
        "storage_key": image.storage_key,
        "sha256": image.sha256,
        "content_type": image.content_type,
        "size_bytes": image.size_bytes,
        "width": image.width,
        "height": image.height,
        "manifest_label": image.manifest_label,
        "variants": image.variants,
    }


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    """Public: callers authenticate with their project's secret key."""

    def __init__(self, catalog: Catalog, accounts: Accounts):
        self.catalog = catalog
        self.accounts = accounts

    async def _principal(self, context) -> Principal:
        principal = await self.accounts.authenticate(bearer_key(context.invocation_metadata()))
        return principal.require_secret()

    async def GetQueue(self, request, context):
        principal = await self._principal(context)
        lines = await self.catalog.queue_summary(
            await self.accounts.queue_scope(principal, request.project_id)
        )
        return catalog_pb2.Queue(
            lines=[
                catalog_pb2.QueueLine(
                    project_id=line["project_id"],
                    model_id=line["model_id"],
                    model=line["model"],
                    priority=line["priority"],
                    pending=line["pending"],
                    processing=line["processing"],
                    oldest_pending_at=_timestamp(line["oldest_pending_at"])
                    if line["oldest_pending_at"]
                    else None,
                )
                for line in lines
            ]
        )

    async def ListModels(self, request, context):
        principal = await self._principal(context)
        models = await self.catalog.list_models(principal.project_id)
        return catalog_pb2.ListModelsResponse(models=[model_to_proto(m) for m in models])

    async def GetModel(self, request, context):
        principal = await self._principal(context)
        return model_to_proto(await self.catalog.get_model(principal.project_id, request.name))

    async def CreateModel(self, request, context):
        principal = await self._principal(context)
        model = await self.catalog.create_model(
            await self.accounts.acting_project(principal, request.project_id),
            {
                "name": request.name,
                "provider": request.provider,
                "upstream_model": request.upstream_model,
                "servers": _server_specs(request.servers),
                **_limits(request.user_limits if request.HasField("user_limits") else None),
                "price_per_image": request.price_per_image,
                "content_credentials": (
                    request.content_credentials if request.HasField("content_credentials") else True
                ),
                "native_policy": (_policy_asked(request) or (None,))[0],
                "max_outputs_per_image": check_max_outputs(
                    request.max_outputs_per_image if request.HasField("max_outputs_per_image") else None
                ),
                "comfyui": _comfy_asked(request),
            },
            admin=principal.admin,
        )
        return model_to_proto(model)

    async def UpdateModel(self, request, context):
        principal = await self._principal(context)
        limits = _limits(request.user_limits) if request.HasField("user_limits") else None
        await self.accounts.update_model(
            principal,
            request.name,
            (limits["daily_limit"], limits["monthly_limit"]) if limits else None,
            request.price_per_image if request.HasField("price_per_image") else None,
            request.content_credentials if request.HasField("content_credentials") else None,
            _policy_asked(request),
            request.max_outputs_per_image if request.HasField("max_outputs_per_image") else None,
            _comfy_asked(request),
        )
        return model_to_proto(await self.catalog.get_model(principal.project_id, request.name))

    async def ReplaceModelServers(self, request, context):
        principal = await self._principal(context)
        model = await self.catalog.replace_servers(
            await self.accounts.acting_project(principal, request.project_id),
            request.name,
            _server_specs(request.servers),
            admin=principal.admin,
        )
        return model_to_proto(model)

    async def DeleteModel(self, request, context):
        principal = await self._principal(context)
        await self.catalog.delete_model(principal.project_id, request.name)
        return empty_pb2.Empty()

    async def GetWebhookSecret(self, request, context):
        principal = await self._principal(context)
        return catalog_pb2.WebhookSecret(key=await self.catalog.webhook_secret(principal.project_id))


class CatalogInternalServicer(catalog_pb2_grpc.CatalogInternalServiceServicer):
    """Internal: callers are other imagegen services that already authenticated the client."""

    def __init__(self, catalog: Catalog, accounts: Accounts):
        self.catalog = catalog
        self.accounts = accounts

    async def Authenticate(self, request, context):
        return principal_to_proto(await self.accounts.authenticate(request.api_key))

    async def EnqueueGeneration(self, request, context):
        deadline = request.deadline.ToDatetime(dt.UTC) if request.HasField("deadline") else None
        lease_to = (request.claim_for_worker, request.lease_seconds) if request.claim_for_worker else None
        project_id, spec, request_hash, principal = (
            request.project_id,
            request.spec,
            request.request_hash,
            None,
        )
        if request.api_key:
            # One call for the key and the enqueue: a sync create's first round trip is its only one here.
            principal = await self.accounts.authenticate(request.api_key)
            project_id = principal.project_id
            spec, request_hash = held_to_key(principal, spec, request_hash)
        row, replayed = await self.catalog.enqueue(
            project_id,
            spec,
            request.idempotency_key,
            request_hash,
            deadline,
            lease_to,
            request.inputs,
            request.request_body,
            request.generation_id,
            request.stored_again,
        )
        answer = catalog_pb2.EnqueueGenerationResponse(generation=generation_to_proto(row), replayed=replayed)
        if row.get("job") is not None:
            answer.job.CopyFrom(job_to_proto(row["job"]))
        if principal is not None:
            answer.principal.CopyFrom(principal_to_proto(principal))
        return answer

    async def ClaimJobs(self, request, context):
        jobs, probes = await self.catalog.claim_jobs(
            request.worker_id, request.max_jobs, request.lease_seconds, request.wait_seconds
        )
        return catalog_pb2.ClaimJobsResponse(
            jobs=[job_to_proto(job) for job in jobs], probes=[_target(p) for p in probes]
        )

    async def RenewLeases(self, request, context):
        lost = await self.catalog.renew_leases(
            request.worker_id, list(request.generation_ids), request.lease_seconds
        )
        return catalog_pb2.RenewLeasesResponse(lost_generation_ids=lost)

    async def ReportProgress(self, request, context):
        await self.catalog.report_progress(request.worker_id, list(request.jobs))
        return empty_pb2.Empty()

    async def CompleteJob(self, request, context):
        (answer,) = await self.catalog.complete_jobs([_completion(request)])
        if isinstance(answer, DomainError):
            raise answer
        return generation_to_proto(answer)

    async def CompleteJobs(self, request, context):
        answers = await self.catalog.complete_jobs([_completion(job) for job in request.jobs])
        response = catalog_pb2.CompleteJobsResponse()
        for job, answer in zip(request.jobs, answers, strict=True):
            result = response.results.add(generation_id=job.generation_id)
            if isinstance(answer, DomainError):
                result.code, result.message = answer.code.value[0], answer.message
            else:
                result.generation.CopyFrom(generation_to_proto(answer))
        return response

    async def FailJob(self, request, context):
        row = await self.catalog.fail_job(
            request.worker_id,
            request.generation_id,
            request.server_id,
            request.reason,
            _FAILURE_KINDS.get(request.kind, "transient"),
        )
        return generation_to_proto(row)

    async def ReleaseJobs(self, request, context):
        await self.catalog.release_jobs(request.worker_id, list(request.generation_ids))
        return empty_pb2.Empty()

    async def ReportProbe(self, request, context):
        await self.catalog.report_probe(request.server_id, request.ok, request.error)
        return empty_pb2.Empty()

    async def CancelGeneration(self, request, context):
        return generation_to_proto(await self.catalog.cancel(request.project_id, request.id, request.reason))

    async def GetGeneration(self, request, context):
        return generation_to_proto(await self.catalog.get_generation(request.project_id, request.id))

    async def ListGenerations(self, request, context):
        page = await self.catalog.list_generations(
            request.project_id,
            {"user": request.user, "model": request.model, "status": request.status, "id": request.id},
            request.page_size,
            request.page_token,
        )
        return catalog_pb2.ListGenerationsResponse(
            generations=[generation_to_proto(row) for row in page.rows],
            next_page_token=page.next_token,
            previous_page_token=page.previous_token,
            page_size=page.page_size,
        )

    async def DeleteGeneration(self, request, context):
        orphaned = await self.catalog.delete_generation(request.project_id, request.id)
        return catalog_pb2.DeleteGenerationResponse(orphaned_keys=orphaned)

    async def ReportUnusedBlobs(self, request, context):
        await self.catalog.note_unused_blobs(list(request.storage_keys), request.at_once)
        return empty_pb2.Empty()

    async def ResolvePermanentImage(self, request, context):
        return image_to_proto(await self.catalog.permanent_image(request.permanent_key))

    async def AdoptOrphanBlobs(self, request, context):
        adopted = await self.catalog.adopt_orphan_blobs(list(request.storage_keys))
        return catalog_pb2.AdoptOrphanBlobsResponse(storage_keys=adopted)

    async def RecordUpload(self, request, context):
        return upload_to_proto(
            await self.catalog.record_upload(
                request.project_id, request.image, request.ttl_seconds, request.stored_again
            )
        )

    async def GetUploads(self, request, context):
        uploads = await self.catalog.uploads(request.project_id, list(request.ids))
        return catalog_pb2.GetUploadsResponse(uploads=[upload_to_proto(row) for row in uploads])

    async def ClaimUnusedBlobs(self, request, context):
        claimed = await self.catalog.claim_unused_blobs(request.max_keys)
        return catalog_pb2.ClaimUnusedBlobsResponse(
            unused_since={key: _timestamp(blob["noticed_at"]) for key, blob in claimed.items()},
            at_once=[key for key, blob in claimed.items() if blob["at_once"]],
        )

    async def EndBlobSweep(self, request, context):
        deleted = {key: since.ToDatetime(dt.UTC) for key, since in request.deleted.items()}
        await self.catalog.end_blob_sweep(deleted, list(request.kept_keys))
        return empty_pb2.Empty()

    async def BlobsBeingSwept(self, request, context):
        swept = await self.catalog.blobs_being_swept(list(request.storage_keys))
        return catalog_pb2.BlobsBeingSweptResponse(storage_keys=swept)

    async def WatchGeneration(self, request, context):
        async for row in self.catalog.watch(
            request.project_id, request.id, request.terminal_only, request.previews
        ):
            yield generation_to_proto(row)

    async def ClaimWebhookDeliveries(self, request, context):
        deliveries = await self.catalog.claim_deliveries(
            request.max_deliveries, request.lease_seconds, request.wait_seconds
        )
        return catalog_pb2.ClaimWebhookDeliveriesResponse(
            deliveries=[
                catalog_pb2.WebhookDelivery(
                    id=d["id"],
                    url=d["url"],
                    secret=d["webhook_secret"],
                    attempt=d["attempts"],
                    generation=generation_to_proto(d["generation"]),
                    permanent_urls=d["permanent_urls"],
                    event=d["event"],
                )
                for d in deliveries
            ]
        )

    async def ReportWebhookDelivery(self, request, context):
        await self.catalog.report_delivery(request.id, request.delivered, request.status_code, request.error)
        return empty_pb2.Empty()

    async def ClaimArweaveArchives(self, request, context):
        archives = await self.catalog.claim_arweave_archives(
            request.max_archives, request.lease_seconds, request.wait_seconds
        )
        return catalog_pb2.ClaimArweaveArchivesResponse(
            archives=[arweave_to_proto(archive, archive) for archive in archives]
        )

    async def ReportArweaveArchive(self, request, context):
        await self.catalog.report_arweave_archive(
            request.storage_key,
            request.state,
            request.transaction_json,
            request.url,
            request.error,
            request.retry_in_seconds,
        )
        return empty_pb2.Empty()


def _rate(rate: catalog_pb2.RateLimit) -> tuple[float, int]:
    return rate.requests_per_second, rate.burst


def key_to_proto(row: Row, rate: tuple[float, int] | None, key: str = "") -> catalog_pb2.ApiKey:
    answer = catalog_pb2.ApiKey(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        kind=row["kind"],
        user=row["end_user"],
        key=key,
        hint=row["hint"],
        created_at=_timestamp(row["created_at"]),
    )
    if row["revoked_at"] is not None:
        answer.revoked_at.CopyFrom(_timestamp(row["revoked_at"]))
    if rate is not None:
        answer.rate_limit.CopyFrom(catalog_pb2.RateLimit(requests_per_second=rate[0], burst=rate[1]))
    return answer


class AccountServicer(catalog_pb2_grpc.AccountServiceServicer):
    """Public: projects and keys for admin keys; limits, credits and usage for a project's secret keys."""

    def __init__(self, catalog: Catalog, accounts: Accounts):
        self.catalog = catalog
        self.accounts = accounts

    async def _principal(self, context) -> Principal:
        return await self.accounts.authenticate(bearer_key(context.invocation_metadata()))

    def _key(self, row: Row, key: str = "") -> catalog_pb2.ApiKey:
        return key_to_proto(row, self.accounts.effective_rate(row), key)

    async def GetCaller(self, request, context):
        principal = await self._principal(context)
        return catalog_pb2.Caller(
            project_id=principal.project_id,
            key_id=principal.key_id,
            kind=principal.kind,
            user=principal.user,
            admin=principal.admin,
        )

    async def ListProjects(self, request, context):
        rows = await self.accounts.list_projects(await self._principal(context))
        return catalog_pb2.ListProjectsResponse(projects=[project_to_proto(row) for row in rows])

    async def CreateProject(self, request, context):
        row = await self.accounts.create_project(await self._principal(context), request.name)
        return project_to_proto(row)

    async def UpdateProject(self, request, context):
        row = await self.accounts.update_project(
            await self._principal(context),
            request.id,
            request.permanent_urls if request.HasField("permanent_urls") else None,
        )
        return project_to_proto(row)

    async def CreateKey(self, request, context):
        row, key = await self.accounts.create_key(
            await self._principal(context),
            request.project_id,
            request.name,
            request.kind,
            request.user,
            _rate(request.rate_limit) if request.HasField("rate_limit") else None,
        )
        return self._key(row, key)

    async def ListKeys(self, request, context):
        rows = await self.accounts.list_keys(await self._principal(context), request.project_id)
        return catalog_pb2.ListKeysResponse(keys=[self._key(row) for row in rows])

    async def UpdateKey(self, request, context):
        rate = None
        if request.HasField("rate_limit"):
            empty = request.rate_limit == catalog_pb2.RateLimit()
            rate = "default" if empty else _rate(request.rate_limit)
        row = await self.accounts.update_key(
            await self._principal(context),
            request.id,
            request.name if request.HasField("name") else None,
            rate,
        )
        return self._key(row)

    async def RevokeKey(self, request, context):
        return self._key(await self.accounts.revoke_key(await self._principal(context), request.id))

    async def SetUserLimits(self, request, context):
        row = await self.accounts.set_user_limits(
            await self._principal(context),
            request.user,
            request.model,
            request.daily if request.HasField("daily") else None,
            request.monthly if request.HasField("monthly") else None,
        )
        return catalog_pb2.UserLimits(
            user=request.user, model=row["name"], daily=row["daily_limit"], monthly=row["monthly_limit"]
        )

    async def GetRemainingGenerations(self, request, context):
        row = await self.accounts.remaining(await self._principal(context), request.user, request.model)
        return catalog_pb2.RemainingGenerations(
            remaining=row["remaining"],
            remaining_this_month=row["remaining_this_month"],
            daily_reset_at=_timestamp(row["daily_reset_at"]),
            monthly_reset_at=_timestamp(row["monthly_reset_at"]),
        )

    async def AddCredits(self, request, context):
        balance = await self.accounts.add_credits(
            await self._principal(context), request.user, request.amount
        )
        return catalog_pb2.CreditBalance(user=request.user, balance=balance)

    async def EraseUser(self, request, context):
        principal = (await self._principal(context)).require_secret()
        erased = await self.catalog.erase_user(principal.project_id, request.user)
        return catalog_pb2.ErasedUser(
            user=request.user,
            generations=erased["generations"],
            images=erased["images"],
            arweave_copies=[
                catalog_pb2.ArweaveCopy(transaction_id=copy["transaction_id"] or "", url=copy["url"])
                for copy in erased["arweave_copies"]
            ],
        )

    async def GetCredits(self, request, context):
        balance = await self.accounts.balance(await self._principal(context), request.user)
        return catalog_pb2.CreditBalance(user=request.user, balance=balance)

    async def GetUsage(self, request, context):
        usage = await self.accounts.usage(
            await self._principal(context),
            request.user,
            request.model,
            getattr(request, "from"),
            request.to,
        )
        return catalog_pb2.Usage(
            to=usage["to"].isoformat(),
            days=[
                catalog_pb2.UsageDay(
                    date=d["day"].isoformat(),
                    generations=d["generations"],
                    images=d["images"],
                    failed=d["failed"],
                )
                for d in usage["days"]
            ],
            totals=catalog_pb2.UsageCounts(**usage["totals"]),
            **{"from": usage["from"].isoformat()},
        )


# The service and method Envoy's ext_authz filter calls (envoy.service.auth.v3), answered with the
# catalog's own mirror of its messages (gateway_check.proto).
ENVOY_CHECK_SERVICE = "envoy.service.auth.v3.Authorization"


def _refusal(refused: DomainError) -> gateway_check_pb2.GatewayCheckResponse:
    check = gateway_check_pb2
    retry = [(key, value) for key, value in refused.trailing_metadata() if key == RETRY_AFTER_KEY]
    return check.GatewayCheckResponse(
        status=check.GatewayCheckStatus(code=refused.code.value[0], message=refused.message),
        denied_response=check.GatewayDeniedHttpResponse(
            status=check.GatewayHttpStatus(code=HTTP_STATUS.get(refused.code, 500)),
            headers=[
                check.GatewayHeaderValueOption(header=check.GatewayHeaderValue(key=key, value=value))
                for key, value in retry
            ],
            body=refused.message,
        ),
    )


class GatewayCheckServicer:
    """Envoy asks before it holds a large request body (envoy.yaml's ext_authz filter): a request whose
    key is not live is refused there, so its body is never read. A request this lets through meets the
    service's own checks, rate and permissions included, as any request does."""

    def __init__(self, accounts: Accounts):
        self.accounts = accounts

    async def Check(self, request, context):
        headers = request.attributes.request.http.headers
        try:
            await self.accounts.recognize(bearer_key(headers.items()))
        except DomainError as refused:
            return _refusal(refused)
        return gateway_check_pb2.GatewayCheckResponse(status=gateway_check_pb2.GatewayCheckStatus(code=0))

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            ENVOY_CHECK_SERVICE,
            {
                "Check": grpc.unary_unary_rpc_method_handler(
                    self.Check,
                    request_deserializer=gateway_check_pb2.GatewayCheckRequest.FromString,
                    response_serializer=gateway_check_pb2.GatewayCheckResponse.SerializeToString,
                )
            },
        )
