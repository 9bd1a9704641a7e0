# access-api: the same service as `make run`.
#   docker build -t access-api .
#   docker run -v access-api-data:/data access-api access-api migrate   # once per release
#   docker run -v access-api-data:/data access-api access-api bootstrap --name "My MSP" \
#     --domain-prefix my-msp --admin-email admin@example.com
#   docker run -p 8000:8000 -v access-api-data:/data access-api
# The embedded SQLite database and its generated secret live in /data, a volume the service
# user owns. For PostgreSQL set ACCESS_API_DATABASE_URL and ACCESS_API_SECRET_KEY instead.
# Behind a proxy, set ACCESS_API_FORWARDED_ALLOW_IPS to its address: nobody is trusted to
# tell the client address by default.
#
# tests/deploy/test_wheel.py runs the RUN and CMD lines below (marked "# test:") in a fresh
# virtualenv as an unprivileged user: keep them as they are there.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
COPY migrations ./migrations
# test: wheel
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ACCESS_API_DATABASE_URL=sqlite+aiosqlite:////data/access-api.db \
    ACCESS_API_SECRET_KEY_FILE=/data/.access-api-secret \
    ACCESS_API_LOG_FORMAT=json
COPY constraints.txt /tmp/constraints.txt
COPY --from=build /wheels /wheels
# test: install
RUN pip install -c /tmp/constraints.txt /wheels/*.whl
RUN useradd --system --uid 10001 --home-dir /data --no-create-home access \
    && mkdir -p /data && chown access:access /data && chmod 0700 /data
VOLUME /data
WORKDIR /data
USER access

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"
# test: serve
CMD ["access-api", "serve", "--host", "0.0.0.0", "--port", "8000"]
