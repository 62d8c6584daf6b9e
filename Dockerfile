# Escalator's image: one image for every role; the role is the command.
#   docker build -t escalator .
#   docker run --rm escalator --help
#   docker run --rm -e ESCALATOR_REDIS_URL=... -e ESCALATOR_DATABASE_URL=... escalator worker

# Build wheels in a throw-away stage, so compilers (needed only where a dependency has no
# wheel for this platform) never reach the runtime image.
FROM python:3.11-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY config ./config
COPY schemas ./schemas
COPY worker ./worker
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres]"

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels "escalator[postgres]" \
 && rm -rf /wheels
RUN groupadd --system escalator \
 && useradd --system --gid escalator --create-home --home-dir /home/escalator escalator
USER escalator
WORKDIR /home/escalator
EXPOSE 8080
ENTRYPOINT ["escalator"]
CMD ["--help"]
