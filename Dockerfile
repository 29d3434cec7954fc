# One image for every process of the stack; docker-compose.yml picks the
# command (a service, the gateway, or the one-shot `adtech migrate`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# Pinned dependencies first: this layer is reused until requirements.lock changes.
# docker/extra-ca/ holds the building machine's extra CA certificates when its
# network intercepts TLS (`make test-compose` copies them in, certificates
# only): the two pip steps trust them, and the second removes the bundle.
COPY requirements.lock ./
COPY docker/extra-ca/ /tmp/extra-ca/
RUN if ls /tmp/extra-ca/*.crt >/dev/null 2>&1; then \
        cat /etc/ssl/certs/ca-certificates.crt /tmp/extra-ca/*.crt > /tmp/pip-ca.pem; fi \
 && if [ -s /tmp/pip-ca.pem ]; then export PIP_CERT=/tmp/pip-ca.pem; fi \
 && pip install -r requirements.lock

COPY pyproject.toml ./
COPY protos ./protos
COPY scripts ./scripts
COPY common ./common
COPY services ./services
COPY gateway ./gateway
COPY operations ./operations
COPY sandbox ./sandbox
RUN if [ -s /tmp/pip-ca.pem ]; then export PIP_CERT=/tmp/pip-ca.pem; fi \
 && python scripts/gen_protos.py && pip install --no-deps -e . \
 && rm -rf /tmp/extra-ca /tmp/pip-ca.pem

# Never run as root; the data directory is only a fallback for generated
# secrets (compose passes every secret explicitly).
RUN useradd --system --uid 10001 --home-dir /app adtech && mkdir -p /app/.data && chown adtech /app/.data
USER adtech

CMD ["adtech", "--help"]
