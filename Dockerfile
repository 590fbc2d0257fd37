# syntax=docker/dockerfile:1
# EventFlow's API image: `eventflow serve --no-worker` (workers run from Dockerfile.worker).
# A build stage compiles the release binary; the runtime stage is Debian slim with the binary,
# CA certificates and curl for the health check, running as an unprivileged user.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src src
COPY migrations migrations
COPY console console
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin eventflow \
    && cp target/release/eventflow /usr/local/bin/eventflow

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/eventflow eventflow
COPY --from=build /usr/local/bin/eventflow /usr/local/bin/eventflow
USER eventflow
WORKDIR /var/lib/eventflow
ENV API_HOST=0.0.0.0 API_PORT=8000 LOG_FORMAT=json
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${API_PORT}/health/ready" >/dev/null || exit 1
ENTRYPOINT ["eventflow"]
CMD ["serve", "--no-worker"]
