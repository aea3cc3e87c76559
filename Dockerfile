# syntax=docker/dockerfile:1
#
# Spate's container image: a Rust build stage and a small runtime stage holding only the
# `spate` binary, run as a fixed non-root user with its data on the /var/lib/spate volume.
#
#   docker build -t spate .
#   docker run -p 9092:9092 -p 9644:9644 spate        # a single node, reachable as localhost:9092
#
# Both FROM lines are build arguments, so the same file builds from public images (the
# defaults) and from locally made ones where no registry is reachable (deploy/test/podman-run).
# Configuration is the SPATE_* environment of docs/configuration.md; the Kubernetes manifests
# in deploy/kubernetes set it per pod.

ARG RUST_IMAGE=docker.io/library/rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
# protoc generates the raft crate's protobuf code; a build image may already carry it.
RUN command -v protoc >/dev/null 2>&1 \
    || { apt-get update -q \
         && apt-get install -y -q --no-install-recommends protobuf-compiler \
         && rm -rf /var/lib/apt/lists/*; }
WORKDIR /src
COPY . .
# The registry and the target directory are build caches: a rebuild after a source change
# compiles only the workspace crates, not the few hundred dependencies again.
RUN --mount=type=cache,id=spate-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=spate-release-target,target=/src/target \
    cargo build --release --locked -p spate-broker --bin spate \
    && install -D -m 0755 target/release/spate /out/spate

FROM ${RUNTIME_IMAGE}
# A fixed uid and gid, so volume ownership and the pod securityContext agree everywhere.
ARG SPATE_UID=10001
RUN echo "spate:x:${SPATE_UID}:${SPATE_UID}:Spate:/var/lib/spate:/usr/sbin/nologin" >> /etc/passwd \
    && echo "spate:x:${SPATE_UID}:" >> /etc/group \
    && mkdir -p /var/lib/spate \
    && chown "${SPATE_UID}:${SPATE_UID}" /var/lib/spate \
    && chmod 0750 /var/lib/spate
COPY --from=build /out/spate /usr/local/bin/spate

# Every listener binds all interfaces in a container; the advertised Kafka address must be
# the name clients reach the node by (localhost for `docker run -p 9092:9092`; the pod's
# stable DNS name in the StatefulSet).
ENV SPATE_DATA_DIR=/var/lib/spate \
    SPATE_KAFKA_LISTEN=0.0.0.0:9092 \
    SPATE_KAFKA_ADVERTISE=localhost:9092 \
    SPATE_CONTROLLER_LISTEN=0.0.0.0:9093 \
    SPATE_CLOUDEVENTS_LISTEN=0.0.0.0:8080 \
    SPATE_ADMIN_LISTEN=0.0.0.0:9644 \
    SPATE_LOG_FORMAT=json

USER ${SPATE_UID}:${SPATE_UID}
WORKDIR /var/lib/spate
VOLUME ["/var/lib/spate"]
# Kafka, controller quorum, CloudEvents ingress, admin (metrics and health).
EXPOSE 9092 9093 8080 9644

# The image has no HTTP client, so the check speaks HTTP/1.0 over bash's /dev/tcp to the admin
# port the environment configures. Kubernetes ignores this and uses the pod's probes.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${SPATE_ADMIN_LISTEN##*:} && printf 'GET /health/live HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]

# SIGTERM starts the controlled shutdown: leaderships move away, then the node closes its logs
# and exits 0. Exec form, so spate is PID 1 and receives the signal itself.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/spate"]
CMD ["serve"]
