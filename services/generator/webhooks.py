"""Delivers the catalog's webhook outbox: a POST of the generation's JSON to its `callbackUrl`, signed
per Standard Webhooks (https://www.standardwebhooks.com). The catalog schedules retries."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time

import aiohttp
from google.protobuf import json_format
from imagegen.catalog.v1 import catalog_pb2

from services.common import tracing
from services.common.errors import DomainError
from services.common.outbound import OutboundPolicy, OutboundRefused

from .background import BackgroundLoop
from .clients import CatalogClient
from .domain import Generator
from .public import to_public

log = logging.getLogger("imagegen.generator.webhooks")

USER_AGENT = "imagegen-webhooks/1"


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed by the secret's base64 part."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


class WebhookDispatcher(BackgroundLoop):
    name = "webhooks"

    def __init__(
        self,
        catalog: CatalogClient,
        generator: Generator,
        timeout_seconds: float,
        public_url: str,
        policy: OutboundPolicy,
        parallel: int = 8,
    ):
        super().__init__()
        self.policy = policy
        self.public_url = public_url
        self.catalog = catalog
        self.generator = generator
        self.timeout = timeout_seconds
        self.parallel = parallel

    async def _loop(self) -> None:
        self.http(USER_AGENT, self.policy)
        while True:
            try:
                deliveries = await self.catalog.claim_deliveries(self.parallel, self.timeout + 30, 1.0)
            except DomainError as exc:
                log.warning("webhook claim failed", extra={"fields": {"error": exc.message}})
                await asyncio.sleep(1)
                continue
            await asyncio.gather(*(self._deliver(delivery) for delivery in deliveries))

    async def _deliver(self, delivery: catalog_pb2.WebhookDelivery) -> None:
        attributes = {
            "imagegen.generation_id": delivery.generation.id,
            "imagegen.webhook_event": delivery.event,
            "imagegen.attempt": delivery.attempt,
        }
        with tracing.span("deliver webhook", parent=delivery.generation.trace_parent, attributes=attributes):
            await self._deliver_traced(delivery)

    async def _deliver_traced(self, delivery: catalog_pb2.WebhookDelivery) -> None:
        status, error = 0, ""
        try:
            public = to_public(
                await self.generator.signed(delivery.generation, 30),
                self.public_url if delivery.permanent_urls else "",
            )
            body = json_format.MessageToJson(
                public, always_print_fields_with_no_presence=True, indent=None
            ).encode()
            timestamp = int(time.time())
            headers = {
                "content-type": "application/json",
                "webhook-id": delivery.id,
                "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(delivery.secret, delivery.id, timestamp, body),
                "webhook-event": delivery.event or "completed",
            }
            self.policy.check_url(delivery.url)
            async with self._session.post(
                delivery.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
            ) as response:
                status = response.status
                if not 200 <= status < 300:
                    error = (await response.text(errors="replace"))[:300] or f"HTTP {status}"
        except TimeoutError:
            error = f"no answer within {self.timeout:.0f} s"
        except OutboundRefused as exc:
            error = str(exc)
        except aiohttp.ClientConnectorError as exc:
            error = f"could not connect: {exc.os_error.strerror or exc.os_error}"
        except (aiohttp.ClientError, ValueError) as exc:
            error = type(exc).__name__
        except DomainError as exc:
            error = exc.message
        delivered = 200 <= status < 300
        try:
            await self.catalog.report_delivery(delivery.id, delivered, status, error)
        except DomainError as exc:
            # Unreported, the delivery's lease runs out and it is attempted again.
            log.warning("webhook result not recorded", extra={"fields": {"error": exc.message}})
