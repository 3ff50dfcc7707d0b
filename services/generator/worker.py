"""The worker: claims jobs from the catalog's queue, runs each on the server the catalog chose, stores
the images, and answers for the job; it renews its leases while it works.

A job whose lease this worker lost (cancelled, or claimed again elsewhere) is stopped at once, so an
abandoned job does not keep a model server busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import time
from dataclasses import dataclass

import c2pa
import grpc
from imagegen.catalog.v1 import catalog_pb2
from imagegen.storage.v1 import storage_pb2

from services.common import metrics, tracing
from services.common.errors import DomainError
from services.common.ids import new_id
from services.common.vocabulary import (
    MAX_OUTPUTS_PER_IMAGE,
    SMALL_BATCH_BYTES,
    SMALL_OBJECT_BYTES,
    variant_key,
    variant_widths,
)

from .batching import Batcher
from .clients import CatalogClient, StorageClient
from .progress import ProgressReporter
from .provenance import ContentCredentials, Creation
from .providers import (
    ImageSpec,
    InputFile,
    ModelError,
    Provider,
    RenderedImage,
    ServerFailure,
    ServerTarget,
)
from .sweeper import record_around_sweeps
from .variants import Variant, make_variants

log = logging.getLogger("imagegen.generator.worker")


@dataclass(frozen=True)
class WorkerConfig:
    # Jobs this worker runs at once. A job mostly waits on its model server (whose own limit is the
    # server's max_concurrency), and a sync caller's job runs where the caller waits only while a slot
    # is free: with 8, sixteen sync callers sent half their jobs through the queue and a watch
    # (make bench, c=16: 99 req/s at 17.3 CPU ms per generation, against 127 at 13.8 with 32).
    slots: int = 32
    lease_seconds: float = 15.0
    heartbeat_seconds: float = 1.0
    # The longest a model server gets for one job with no caller deadline.
    model_timeout_seconds: float = 300.0
    probe_timeout_seconds: float = 5.0
    # How long a freed slot may wait for others before the worker claims for it alone.
    claim_coalesce_seconds: float = 0.01
    # Ask the catalog to queue stored images for Arweave (this generator has a wallet).
    archive_to_arweave: bool = False
    # How long a job keeps its images and retries storing them while storage is unavailable, before it
    # goes back to the queue (never counted against the model server that made them).
    store_retry_seconds: float = 60.0
    # How often the latest progress of running jobs goes to the catalog.
    progress_interval_seconds: float = 0.25


def _target(server: catalog_pb2.ServerTarget) -> ServerTarget:
    return ServerTarget(
        server.id,
        server.url.rstrip("/"),
        server.api_key,
        server.upstream_model,
        server.private_ok,
        server.max_concurrency,
        server.comfyui,
    )


@dataclass(frozen=True)
class Answered:
    """A job this worker finished, for the caller in this process that waits for it."""

    record: catalog_pb2.GenerationRecord
    # Each image's bytes as just stored, by storage key: an answer carrying the bytes (OpenAI's
    # b64_json, Recoup's) need not read them back from storage.
    image_data: dict[str, bytes]


class Worker:
    def __init__(
        self,
        catalog: CatalogClient,
        storage: StorageClient,
        providers: dict[str, Provider],
        config: WorkerConfig,
        credentials: ContentCredentials,
    ):
        self.credentials = credentials
        self.catalog = catalog
        self.storage = storage
        self.providers = providers
        self.config = config
        self.id = new_id("worker")
        # Every job this worker holds a lease on, until the catalog has its answer.
        self._running: dict[str, asyncio.Task] = {}
        # The jobs among them that occupy a slot: a job frees its slot once its images are stored,
        # while its answer waits for the next batch to the catalog.
        self._in_slot: set[str] = set()
        self._lost: set[str] = set()
        # Store-and-answer tasks, which outlive a cancelled job (see `_run`).
        self._finishing: set[asyncio.Task] = set()
        self._slot_freed = asyncio.Event()
        # Slots held for jobs the catalog may lease to this worker when a sync caller here enqueues.
        self._reserved = 0
        # The finished record of each such job, for the caller waiting in this process.
        self._answers: dict[str, asyncio.Future] = {}
        self._stopping = False
        self._loops: list[asyncio.Task] = []
        self.progress = ProgressReporter(catalog, self.id, config.progress_interval_seconds)
        self._completions = Batcher(catalog.complete_jobs, name="complete-jobs")
        self._puts = Batcher(
            storage.put_small, name="put-images", max_weight=SMALL_BATCH_BYTES, weigh=lambda o: len(o[0])
        )

    def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="claim-loop"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat-loop"),
        ]
        self.progress.start()

    async def stop(self, grace: float) -> None:
        """Stops claiming, lets running jobs finish within `grace`, and puts the rest back in the queue."""
        self._stopping = True
        self._loops[0].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._loops[0]
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=grace)
        self._loops[1].cancel()
        unfinished = list(self._running)
        for task in self._running.values():
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)
        if self._finishing:
            await asyncio.wait(list(self._finishing), timeout=grace)
        await self.progress.stop()
        await self._completions.close()
        await self._puts.close()
        if unfinished:
            with contextlib.suppress(DomainError):
                await self.catalog.release_jobs(self.id, unfinished)
            log.info("jobs released", extra={"fields": {"count": len(unfinished)}})

    async def _claim_loop(self) -> None:
        while not self._stopping:
            free = await self._free_slots()
            try:
                # At most half the slots per claim: jobs claimed together finish together, and two
                # cohorts keep the renderer busy while the other one's answers travel.
                wanted = min(free, max(1, self.config.slots // 2))
                answer = await self.catalog.claim_jobs(self.id, wanted, self.config.lease_seconds, 1.0)
            except DomainError as exc:
                log.warning("claim failed", extra={"fields": {"error": exc.message}})
                await asyncio.sleep(0.5)
                continue
            for server in answer.probes:
                asyncio.create_task(self._probe(server))
            for job in answer.jobs:
                generation_id = job.generation.id
                self._in_slot.add(generation_id)
                self._running[generation_id] = asyncio.create_task(self._execute(job), name=generation_id)

    async def _free_slots(self) -> int:
        """Waits for a free slot. While other jobs run, it gives a few more slots a moment to free up,
        so that one claim (one catalog round trip, one Postgres transaction) fills several."""
        loop = asyncio.get_running_loop()
        enough = max(1, self.config.slots // 4)
        deadline = None
        while True:
            free = self._free()
            if free >= enough or (free > 0 and not self._in_slot):
                return free
            timeout = None
            if free > 0:
                deadline = deadline or loop.time() + self.config.claim_coalesce_seconds
                timeout = deadline - loop.time()
                if timeout <= 0:
                    return free
            self._slot_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot_freed.wait(), timeout)

    # -- jobs leased at enqueue, for a sync caller in this process ---------------------------------

    def reserve_slot(self) -> bool:
        """Holds a free slot for a job the catalog may lease to this worker as it is enqueued."""
        if self._stopping or self._free() <= 0:
            return False
        self._reserved += 1
        return True

    def _free(self) -> int:
        return self.config.slots - len(self._in_slot) - self._reserved

    def release_slot(self) -> None:
        self._reserved -= 1
        self._slot_freed.set()

    def run_leased(self, job: catalog_pb2.Job) -> asyncio.Future:
        """Runs a job leased at enqueue in the slot reserved for it. The future is its `Answered`
        record, or None when it did not finish here (retried elsewhere, failed, taken away): the
        catalog knows."""
        self._reserved -= 1
        generation_id = job.generation.id
        answer = asyncio.get_running_loop().create_future()
        self._answers[generation_id] = answer
        self._in_slot.add(generation_id)
        self._running[generation_id] = asyncio.create_task(self._execute(job), name=generation_id)
        return answer

    def _answer(self, generation_id: str, answered: Answered | None) -> None:
        answer = self._answers.pop(generation_id, None)
        if answer is not None and not answer.done():
            answer.set_result(answered)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_seconds)
            held = list(self._running)
            if not held:
                continue
            try:
                lost = await self.catalog.renew_leases(self.id, held, self.config.lease_seconds)
            except DomainError as exc:
                log.warning("lease renewal failed", extra={"fields": {"error": exc.message}})
                continue
            for generation_id in lost:
                task = self._running.get(generation_id)
                if task is not None:
                    self._lost.add(generation_id)
                    task.cancel()

    async def _execute(self, job: catalog_pb2.Job) -> None:
        generation = job.generation
        attributes = {"imagegen.generation_id": generation.id, "imagegen.model": generation.spec.model,
                      "imagegen.attempt": job.attempt}  # fmt: skip
        claimed_ns = time.time_ns()
        tracing.record(
            "queue wait", generation.created_at.ToNanoseconds(), claimed_ns,
            parent=generation.trace_parent, attributes=attributes,
        )  # fmt: skip
        with tracing.span("run generation", parent=generation.trace_parent, attributes=attributes):
            await self._execute_traced(job)

    async def _execute_traced(self, job: catalog_pb2.Job) -> None:
        generation = job.generation
        try:
            await self._run(job)
        except asyncio.CancelledError:
            if generation.id in self._lost:
                log.info("job stopped: no longer ours", extra={"fields": {"generation_id": generation.id}})
            else:
                raise
        except Exception:
            log.exception("job crashed", extra={"fields": {"generation_id": generation.id}})
            await self._fail(job, "the worker hit an internal error", catalog_pb2.FAILURE_KIND_TRANSIENT)
        finally:
            self._running.pop(generation.id, None)
            self._free_slot(generation.id)
            self._lost.discard(generation.id)
            self._answer(generation.id, None)

    def _free_slot(self, generation_id: str) -> None:
        if generation_id in self._in_slot:
            self._in_slot.discard(generation_id)
            self._slot_freed.set()

    def _time_budget(self, job: catalog_pb2.Job) -> tuple[float, bool]:
        """Seconds the model server gets, and whether the caller's deadline (not ours) set them."""
        budget = self.config.model_timeout_seconds
        if job.HasField("deadline"):
            caller = job.deadline.ToNanoseconds() / 1e9 - time.time()
            if caller < budget:
                return max(caller, 0.001), True
        return budget, False

    async def _run(self, job: catalog_pb2.Job) -> None:
        generation, server = job.generation, _target(job.server)
        provider = self.providers.get(job.server.provider)
        if provider is None:
            await self._fail(
                job, f"no provider called {job.server.provider!r}", catalog_pb2.FAILURE_KIND_MODEL
            )
            return
        try:
            spec = await self._image_spec(job)
        except DomainError as exc:
            reason = f"reading the input images failed: {exc.message}"
            await self._fail(job, reason, catalog_pb2.FAILURE_KIND_TRANSIENT)
            return
        asked = generation.spec
        budget, callers = self._time_budget(job)
        if metrics.enabled:
            waited = time.time() - generation.created_at.ToNanoseconds() / 1e9
            metrics.QUEUE_WAIT_SECONDS.labels(asked.model).observe(max(waited, 0.0))
        started = time.monotonic()
        outcome = "cancelled"
        try:
            progress = self.progress.track(generation.id)
            try:
                images = await asyncio.wait_for(
                    provider.generate(server, spec, asked.n, budget, progress), budget
                )
                outcome = "completed"
            except TimeoutError:
                outcome = "timeout"
                raise
            except ServerFailure:
                outcome = "server_failure"
                raise
            except ModelError:
                outcome = "model_error"
                raise
            finally:
                self.progress.forget(generation.id)
                if metrics.enabled:
                    metrics.MODEL_SERVER_SECONDS.labels(asked.model, server.id, outcome).observe(
                        time.monotonic() - started
                    )
        except (TimeoutError, ServerFailure) as exc:
            if callers and _deadline_passed(job):
                # Nobody is waiting any more: that is not the server's fault, and not worth a retry.
                # Before then a failure is the server's, whoever waits: the job goes to another.
                with contextlib.suppress(DomainError):
                    await self.catalog.cancel_generation(
                        generation.project_id,
                        generation.id,
                        "the caller's deadline passed before the model answered",
                    )
                return
            reason = str(exc) or f"{server.url} gave no images within {budget:.1f} s"
            await self._fail(job, reason, catalog_pb2.FAILURE_KIND_SERVER)
            return
        except ModelError as exc:
            await self._fail(job, str(exc), catalog_pb2.FAILURE_KIND_MODEL)
            return
        labels = [""] * len(images)
        if job.content_credentials:
            try:
                signed = await asyncio.gather(
                    *(self._sign(job, index, image, spec.inputs) for index, image in enumerate(images))
                )
            except c2pa.C2paError as exc:
                await self._fail(job, f"signing the images failed: {exc}", catalog_pb2.FAILURE_KIND_MODEL)
                return
            images = [image for image, _ in signed]
            labels = [label for _, label in signed]
        try:
            variants = await asyncio.gather(
                *(self._variants(job, index, image) for index, image in enumerate(images))
            )
        except (c2pa.C2paError, OSError, ValueError) as exc:
            await self._fail(job, f"making the thumbnails failed: {exc}", catalog_pb2.FAILURE_KIND_MODEL)
            return
        # Once images are being stored, storing and answering run to the end even if the job is taken
        # from this worker: a refused answer puts its images on the unused list, where a cancelled
        # task would have left them in storage with nothing pointing at them.
        finishing = asyncio.create_task(self._store_and_answer(job, images, labels, variants))
        self._finishing.add(finishing)
        finishing.add_done_callback(self._finished)
        await asyncio.shield(finishing)

    async def _image_spec(self, job: catalog_pb2.Job) -> ImageSpec:
        """What the provider needs: the spec, the model-native request, and each input image's bytes
        and a signed URL (a Replicate server fetches it; others get the bytes)."""
        generation = job.generation
        asked = generation.spec
        inputs: tuple[InputFile, ...] = ()
        if generation.inputs:
            keys = [image.storage_key for image in generation.inputs]
            datas, urls = await asyncio.gather(
                asyncio.gather(*(self.storage.read_all(key) for key in keys)), self.storage.sign(keys, 60)
            )
            inputs = tuple(
                InputFile(i.role, i.pointer, data, i.content_type, i.width, i.height, url)
                for i, data, url in zip(generation.inputs, datas, urls, strict=True)
            )
        return ImageSpec(
            asked.prompt,
            asked.negative_prompt,
            asked.width,
            asked.height,
            asked.seed if asked.HasField("seed") else None,
            asked.version,
            json.loads(asked.input) if asked.input else None,
            inputs,
            job.max_outputs_per_image or MAX_OUTPUTS_PER_IMAGE,
        )

    def _finished(self, task: asyncio.Task) -> None:
        self._finishing.discard(task)
        # Retrieved here too: when the job was taken away, nobody awaits the task any more.
        if not task.cancelled() and task.exception() is not None:
            log.warning("storing or answering failed", extra={"fields": {"error": repr(task.exception())}})

    async def _store_and_answer(
        self,
        job: catalog_pb2.Job,
        images: list[RenderedImage],
        labels: list[str],
        variants: list[list[Variant]],
    ) -> None:
        generation = job.generation
        # Every image, and every variant a read will offer, is durable in storage before the catalog
        # row pointing at it commits.
        stored, failure = await self._store_images(images, variants)
        if failure is not None:
            if stored:
                # Sweeping an image sweeps its variants.
                await self.catalog.report_unused_blobs([put.key for put in stored])
            if not isinstance(failure, DomainError):
                raise failure
            await self._fail(
                job, f"storing the images failed: {failure.message}", catalog_pb2.FAILURE_KIND_TRANSIENT
            )
            return
        request = catalog_pb2.CompleteJobRequest(
            worker_id=self.id,
            generation_id=generation.id,
            server_id=job.server.id,
            archive_to_arweave=self.config.archive_to_arweave,
            images=[
                catalog_pb2.ImageRecord(
                    index=index,
                    storage_key=put.key,
                    sha256=put.sha256,
                    content_type=put.content_type,
                    size_bytes=put.size_bytes,
                    width=image.width,
                    height=image.height,
                    manifest_label=label,
                    variants=bool(made),
                )
                for index, (image, put, label, made) in enumerate(
                    zip(images, stored, labels, variants, strict=True)
                )
            ],
        )
        self._free_slot(generation.id)

        async def store_again() -> None:
            if (failure := (await self._store_images(images, variants))[1]) is not None:
                raise failure

        try:
            finished = await record_around_sweeps(
                self.catalog,
                [image.storage_key for image in request.images],
                lambda again: self._completions.submit(_stored_again(request, again)),
                store_again,
            )
            self._answer(
                generation.id,
                Answered(finished, {put.key: image.data for put, image in zip(stored, images, strict=True)}),
            )
        except DomainError as exc:
            if exc.code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                # Cancelled, deleted, or answered by another worker first: its images stand, not ours.
                log.info(
                    "result discarded", extra={"fields": {"generation_id": generation.id, "why": exc.message}}
                )
                await self.catalog.report_unused_blobs([image.storage_key for image in request.images])
                return
            raise

    async def _store_images(
        self, images: list[RenderedImage], variants: list[list[Variant]]
    ) -> tuple[list[storage_pb2.PutObjectResponse], BaseException | None]:
        """Stores the images, then their variants (`_store_all`)."""
        stored, failure = await self._store_all([(image.data, image.content_type, "") for image in images])
        if failure is None:
            derived = [
                (variant.data, variant.content_type, variant_key(put.key, variant.width))
                for put, made in zip(stored, variants, strict=True)
                for variant in made
            ]
            _, failure = await self._store_all(derived)
        return stored, failure

    async def _store_all(
        self, objects: list[tuple[bytes, str, str]]
    ) -> tuple[list[storage_pb2.PutObjectResponse], BaseException | None]:
        """Stores the images, retrying with backoff for `store_retry_seconds` while storage is
        unavailable (storing the same bytes again is harmless: keys are their content). Answers what was
        stored, and the failure that ended it, if one did."""
        deadline = time.monotonic() + self.config.store_retry_seconds
        delay = 0.2
        while True:
            results = await asyncio.gather(*(self._store(*o) for o in objects), return_exceptions=True)
            stored = [r for r in results if isinstance(r, storage_pb2.PutObjectResponse)]
            failure = next((r for r in results if isinstance(r, BaseException)), None)
            retryable = isinstance(failure, DomainError) and failure.code in _STORAGE_RETRYABLE
            if not retryable or time.monotonic() + delay > deadline:
                return stored, failure
            log.info("storage unavailable; retrying", extra={"fields": {"error": failure.message}})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _sign(
        self, job: catalog_pb2.Job, index: int, image: RenderedImage, inputs: tuple[InputFile, ...]
    ) -> tuple[RenderedImage, str]:
        generation = job.generation
        creation = Creation(
            generation_id=generation.id,
            index=index,
            model=generation.spec.model,
            provider=job.server.provider,
            upstream_model=job.server.upstream_model,
            server_id=job.server.id,
            prompt=generation.spec.prompt,
            # The image edited first: the manifest makes the first ingredient the parent.
            ingredients=tuple(
                (i.role, i.content_type, i.data) for i in sorted(inputs, key=lambda i: i.role != "image")
            ),
        )
        sign = functools.partial(self.credentials.sign, image.data, image.content_type, creation)
        data, label = sign() if len(image.data) <= _INLINE_SIGN_BYTES else await asyncio.to_thread(sign)
        return dataclasses.replace(image, data=data), label

    async def _store(self, data: bytes, content_type: str, key: str) -> storage_pb2.PutObjectResponse:
        """Under its content's key, or a variant's `key` (variants are always small)."""
        if len(data) <= SMALL_OBJECT_BYTES or key:
            return await self._puts.submit((data, content_type, key))
        return await self.storage.put(data, content_type, 60)

    async def _variants(self, job: catalog_pb2.Job, index: int, image: RenderedImage) -> list[Variant]:
        """The image's thumbnails, each signed as a resize of it when the image is signed."""
        if not variant_widths(image.width):
            return []
        made = await asyncio.to_thread(make_variants, image.data, image.width, image.height)
        if not job.content_credentials:
            return made
        title = f"{job.generation.id}-{index}"
        return [
            dataclasses.replace(
                variant,
                data=await asyncio.to_thread(
                    self.credentials.sign_resize,
                    variant.data,
                    variant.content_type,
                    image.data,
                    image.content_type,
                    title,
                    variant.width,
                ),
            )
            for variant in made
        ]

    async def _fail(self, job: catalog_pb2.Job, reason: str, kind: int) -> None:
        log.info(
            "job failed",
            extra={"fields": {"generation_id": job.generation.id, "server": job.server.id, "reason": reason}},
        )
        try:
            await self.catalog.fail_job(
                catalog_pb2.FailJobRequest(
                    worker_id=self.id,
                    generation_id=job.generation.id,
                    server_id=job.server.id,
                    reason=reason,
                    kind=kind,
                )
            )
        except DomainError as exc:
            # Not ours any more, or the catalog is away: the lease runs out and the job is claimed again.
            log.info(
                "failure not recorded",
                extra={"fields": {"generation_id": job.generation.id, "why": exc.message}},
            )

    async def _probe(self, server: catalog_pb2.ServerTarget) -> None:
        provider = self.providers.get(server.provider)
        error = ""
        try:
            if provider is None:
                raise ServerFailure(f"no provider called {server.provider!r}")
            await asyncio.wait_for(
                provider.probe(_target(server), self.config.probe_timeout_seconds),
                self.config.probe_timeout_seconds,
            )
        except (ServerFailure, ModelError, TimeoutError) as exc:
            error = str(exc) or type(exc).__name__
        log.info("server probed", extra={"fields": {"server": server.id, "ok": not error, "error": error}})
        with contextlib.suppress(DomainError):
            await self.catalog.report_probe(server.id, not error, error)


# Storage answers that mean "not now": the images are kept and storing them is tried again.
_STORAGE_RETRYABLE = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
)
# A failure this close to the caller's deadline is the deadline's: a retry could not answer in time.
_DEADLINE_SLACK_SECONDS = 0.05
# Images up to this size are signed on the event loop: a 110 KB PNG (an OpenAI relay's 192 px answer)
# signs in 0.6 ms, and handing it to a thread cost the loop about as much (`make bench-compare
# BENCH_COMPARE_ARGS="--relay --rounds 8"`: the generator's CPU per relay x0.93 against 64 KiB).
_INLINE_SIGN_BYTES = 256 * 1024


def _stored_again(request: catalog_pb2.CompleteJobRequest, again: bool) -> catalog_pb2.CompleteJobRequest:
    request.stored_again = again
    return request


def _deadline_passed(job: catalog_pb2.Job) -> bool:
    return job.HasField("deadline") and (
        job.deadline.ToNanoseconds() / 1e9 - time.time() <= _DEADLINE_SLACK_SECONDS
    )
