# procshot images, one target each (`make image` builds all three):
#
#   agent        the `procshot` binary: what capture pods run (`procshot locate` in the init
#                container, `procshot capture` in the capture container). Runs as root: the
#                capture container needs root with a few capabilities, and the operator sets
#                runAsUser 65534 on the locate init container itself.
#   operator     `procshot-operator run`, as uid 65532.
#   e2e-fixture  the test fixture (sidecar/tests/fixtures/fixture.c) built statically, the
#                leaking target of `make e2e`.
#
# Both Rust binaries are linked statically against musl, so the images need no libc.
# Architectures: amd64 and arm64, from BuildKit's TARGETARCH (the host's architecture
# with a plain `docker build`). The builder runs on the target's platform, so a
# `docker buildx build --platform linux/arm64` on an amd64 host runs it under emulation
# (slow, but no cross toolchain needed).
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts.

# ---------------------------------------------------------------------------------------
# Rust binaries
# ---------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
ARG TARGETARCH
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools cmake clang \
    && rm -rf /var/lib/apt/lists/*
# Map Docker's architecture name to the Rust target; keep it in /rust-target for the
# build step.
RUN set -eu; \
    arch="${TARGETARCH:-$(dpkg --print-architecture)}"; \
    case "$arch" in \
        amd64) triple=x86_64-unknown-linux-musl ;; \
        arm64) triple=aarch64-unknown-linux-musl ;; \
        *) echo "procshot images support amd64 and arm64, not $arch" >&2; exit 1 ;; \
    esac; \
    rustup target add "$triple"; \
    echo "$triple" > /rust-target
# The C code of dependencies (ring) is compiled with musl-gcc; without these the cc
# crate would look for an `aarch64-linux-musl-gcc` that Debian does not have.
ENV CC_x86_64_unknown_linux_musl=musl-gcc \
    CC_aarch64_unknown_linux_musl=musl-gcc
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY sidecar sidecar
COPY operator operator
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    set -eu; \
    triple="$(cat /rust-target)"; \
    cargo build --release --locked --target "$triple" -p procshot -p procshot-operator; \
    mkdir -p /out; \
    for bin in procshot procshot-operator; do \
        cp "target/$triple/release/$bin" "/out/$bin"; \
        if readelf --program-headers "/out/$bin" | grep -q INTERP; then \
            echo "/out/$bin is dynamically linked; the distroless static images need a static binary" >&2; \
            exit 1; \
        fi; \
    done

# ---------------------------------------------------------------------------------------
# The e2e fixture: a static C binary
# ---------------------------------------------------------------------------------------
FROM debian:bookworm AS fixture-builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY sidecar/tests/fixtures/fixture.c /src/fixture.c
RUN mkdir -p /out \
    && gcc -O2 -Wall -Wextra -Werror -pthread -static -o /out/fixture /src/fixture.c

# ---------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------
FROM gcr.io/distroless/static-debian12 AS agent
LABEL org.opencontainers.image.title="procshot" \
      org.opencontainers.image.description="Captures the fds, threads and memory of a process from /proc" \
      org.opencontainers.image.source="https://github.com/procshot/procshot" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/procshot /usr/local/bin/procshot
ENTRYPOINT ["/usr/local/bin/procshot"]

# The leaking target of `make e2e`. Run it as `fixture leak socket-close-wait 20` with
# FIXTURE_DIR set to a writable directory; it exits when its stdin reaches EOF, so a pod
# running it needs `stdin: true`.
FROM gcr.io/distroless/static-debian12:nonroot AS e2e-fixture
LABEL org.opencontainers.image.title="procshot-e2e-fixture" \
      org.opencontainers.image.description="procshot's test fixture: a process that leaks fds, threads or memory on demand" \
      org.opencontainers.image.source="https://github.com/procshot/procshot" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=fixture-builder /out/fixture /usr/local/bin/fixture
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/fixture"]

FROM gcr.io/distroless/static-debian12:nonroot AS operator
LABEL org.opencontainers.image.title="procshot-operator" \
      org.opencontainers.image.description="Kubernetes operator that runs procshot captures for DebugSession resources" \
      org.opencontainers.image.source="https://github.com/procshot/procshot" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/procshot-operator /usr/local/bin/procshot-operator
USER 65532:65532
# /metrics, /healthz, /readyz
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/procshot-operator", "run"]
