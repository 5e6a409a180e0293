# Landlord container image: one static-ish binary on debian:bookworm-slim, run as uid 10001.
#
#   docker build -t landlord .
#   docker run --rm -e DATABASE_URL=... -e LANDLORD_MASTER_KEY=... -e LANDLORD_CNAME_TARGET=... \
#     -p 8080:8080 -p 80:8081 -p 443:8443 landlord            # default command: `landlord all`
#
# The process is not root, so inside the container it listens on unprivileged ports
# (API 8080, plain HTTP 8081, HTTPS 8443); publish them on 80/443 on the host with
# `-p 80:8081 -p 443:8443`. Override with LANDLORD_API_ADDR / LANDLORD_HTTP_ADDR /
# LANDLORD_HTTPS_ADDR. The `dev` command is not meant for this image (it needs a local
# PostgreSQL installation); use docker-compose.yml for a local stack instead.
#
# Needs BuildKit (the default builder of Docker Engine 23+ and of `docker compose`; with
# Debian's docker.io 20.10, DOCKER_BUILDKIT=1) for the cache mounts below: the cargo registry
# and the target directory survive between builds, so a source change rebuilds only the
# workspace crates. There is no `# syntax=` line on purpose: the Dockerfile frontend built
# into the engine (20.10+) knows `RUN --mount`, and a syntax line would make every build
# fetch docker/dockerfile from Docker Hub, which fails offline.
#
# Build arguments: RUST_IMAGE (the builder), RUNTIME_IMAGE (the base of the image), and
# BINARY_IMAGE: `builder` (the default) compiles here; the name of an image that holds
# /out/landlord takes the binary from it instead and skips the builder stage
# (scripts/compose-test.py does that with the host's `cargo build --release`).

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG BINARY_IMAGE=builder

FROM ${RUST_IMAGE} AS builder
WORKDIR /src

# Everything the release binary is built from. The binary embeds migrations/ (sqlx::migrate!)
# and static/ (include_str!) at compile time, so both are part of the build context.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY migrations ./migrations
COPY static ./static

# The target directory is a cache mount (not part of the image layer), so the binary is
# copied out of it in the same step.
RUN --mount=type=cache,id=landlord-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=landlord-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=landlord-target,target=/src/target,sharing=locked \
    cargo build --release -p landlord --locked \
 && install -D -m 0755 target/release/landlord /out/landlord

# Where the binary comes from (see BINARY_IMAGE above).
FROM ${BINARY_IMAGE} AS binary

FROM ${RUNTIME_IMAGE} AS runtime

# ca-certificates: the ACME client and PostgreSQL TLS trust the system roots.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 landlord \
 && useradd --system --uid 10001 --gid landlord --home-dir /var/lib/landlord --create-home \
      --shell /usr/sbin/nologin landlord

COPY --from=binary /out/landlord /usr/local/bin/landlord

# Unprivileged listen addresses for a non-root process (the binary's own defaults are
# 127.0.0.1:8080, :80 and :443). Map them on the host: 8080:8080, 80:8081, 443:8443.
ENV LANDLORD_API_ADDR=0.0.0.0:8080 \
    LANDLORD_HTTP_ADDR=0.0.0.0:8081 \
    LANDLORD_HTTPS_ADDR=0.0.0.0:8443

USER 10001:10001
WORKDIR /var/lib/landlord
EXPOSE 8080 8081 8443
# Landlord stops cleanly on SIGTERM (the default stop signal).
ENTRYPOINT ["/usr/local/bin/landlord"]
CMD ["all"]
