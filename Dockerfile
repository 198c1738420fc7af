# Multi-stage build: compile with the full Rust toolchain, ship only the binary on a
# distroless base (glibc, CA certificates, a non-root user; no shell, no package
# manager). Not built in CI, which has no Docker engine: see docs/operations.md.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Protobufs compile with protox (pure Rust): no protoc in the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile container --locked -p app \
    && cp target/container/app /app

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /app /app
USER nonroot:nonroot
# A fixed mmap threshold: each argon2 hash (19 MiB) is mapped and returned to the OS
# when done. glibc's adaptive threshold would instead keep them in its heaps, and the
# process grew past 700 MiB under registration load (see docs/benchmarks.md).
ENV HOST=0.0.0.0 PORT=8080 GRPC_PORT=50051 LOG_FORMAT=json MALLOC_MMAP_THRESHOLD_=1048576
EXPOSE 8080 50051
# `app healthcheck` asks /api/health/ready on PORT: healthy only when the database answers.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["/app", "healthcheck"]
ENTRYPOINT ["/app"]
CMD ["serve"]
