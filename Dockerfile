# nimbus-operator image: a multi-stage build on Debian 12 (bookworm), the
# release the code is built and tested on. The runtime stage is Debian slim
# with only the shared libraries nimbus-operator links (test_image.py checks
# the list against the binary) and runs as an unprivileged user.
#
#   docker build -t nimbus-operator:0.1.0 .
#
# No container engine runs where Nimbus is developed: the build stages'
# commands are hack/image-build, which CI runs on the host instead.

# The dashboard (frontend/): npm ci from the lockfile and a Vite build.
FROM node:22-bookworm-slim AS dashboard
WORKDIR /src
COPY hack/image-build hack/image-build
COPY frontend/ frontend/
RUN hack/image-build --dashboard /out

FROM debian:bookworm-slim AS build
# Versions come from the bookworm archive the base image names; pinning each
# package would break the build at every Debian security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential cmake ninja-build pkg-config \
        libcurl4-openssl-dev libwebsockets-dev libyajl-dev libpq-dev libjwt-dev \
        libssl-dev uthash-dev libyaml-dev libcmocka-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN hack/image-build /out

FROM debian:bookworm-slim
# The libraries nimbus-operator links, and the CA bundle for TLS to an
# external PostgreSQL (sslmode verify-full). The apiserver's CA comes from the
# service account, not from here.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates libcurl4 libjwt0 libpq5 libssl3 libwebsockets17 libyajl2 libyaml-0-2 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 nimbus \
    && useradd --system --uid 65532 --gid nimbus --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin nimbus
COPY --from=build /out/rootfs/usr/local/bin/nimbus-operator /usr/local/bin/nimbus-operator
COPY --from=dashboard /out/rootfs/usr/share/nimbus/dashboard /usr/share/nimbus/dashboard
USER 65532:65532
# API (and the dashboard), metrics, health probes (the chart's ports).
EXPOSE 8080 9090 9091
ENTRYPOINT ["/usr/local/bin/nimbus-operator"]
CMD ["--metrics-bind-address=:9090", "--health-probe-bind-address=:9091", "--api-bind-address=:8080", \
     "--dashboard-dir=/usr/share/nimbus/dashboard"]
