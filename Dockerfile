# One image recipe for every imagegen process; compose picks the process with build args:
#   docker build --build-arg MODULE=services.catalog.server --build-arg PORT=50052 .
FROM python:3.11-slim
ARG MODULE=services.generator.server
ARG PORT=50051
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY gen ./gen
COPY services ./services
COPY gateway ./gateway
COPY tools ./tools
COPY console ./console
RUN pip install . && useradd --system --uid 10001 imagegen \
    && mkdir -p /var/lib/imagegen && chown imagegen /var/lib/imagegen
USER imagegen
# Inside a container every service listens on all interfaces; only one of these applies to a process.
ENV IMAGEGEN_MODULE=${MODULE} IMAGEGEN_HEALTH_PORT=${PORT} IMAGEGEN_VAR_DIR=/var/lib/imagegen \
    IMAGEGEN_CONSOLE_DIR=/app/console \
    IMAGEGEN_GATEWAY_HOST=0.0.0.0 IMAGEGEN_GENERATOR_HOST=0.0.0.0 \
    IMAGEGEN_CATALOG_HOST=0.0.0.0 IMAGEGEN_STORAGE_HOST=0.0.0.0
EXPOSE ${PORT}
HEALTHCHECK --interval=5s --timeout=4s --start-period=10s --retries=5 \
  CMD python -m services.common.healthcheck "127.0.0.1:${IMAGEGEN_HEALTH_PORT}"
CMD exec python -m "${IMAGEGEN_MODULE}"
