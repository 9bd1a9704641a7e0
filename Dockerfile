# access-api: the same service as `make run`, for PostgreSQL in production.
#   docker build -t access-api .
#   docker run -e ACCESS_API_DATABASE_URL=postgresql+asyncpg://... -e ACCESS_API_SECRET_KEY=... \
#     access-api access-api migrate          # once per release, before serving
#   docker run -p 8000:8000 -e ... access-api
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY src ./src
COPY migrations ./migrations
RUN pip install -c constraints.txt . \
    && useradd --system --uid 10001 --home-dir /app access
USER access

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["access-api", "serve", "--host", "0.0.0.0", "--port", "8000", "--forwarded-allow-ips", "*"]
