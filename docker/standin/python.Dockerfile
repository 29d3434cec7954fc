# Stand-in for python:3.11-slim when no registry answers (make test-compose):
# Debian bookworm's Python 3.11 with a venv first on PATH, so `python` and
# `pip install` behave as in the real image.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /usr/local/python
ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
LABEL org.adtech.standin="python:3.11-slim"
CMD ["python3"]
