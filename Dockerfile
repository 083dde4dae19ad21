# syntax=docker/dockerfile:1
# Warden in a container: a static-enough Rust binary on distroless (glibc,
# CA certificates, no shell, no package manager), as a non-root user.
#
#   docker build -t warden .
#   docker run -d --name warden -p 8080:8080 -v warden-data:/data \
#     -e WARDEN_SERVER__TRUSTED_PROXIES=172.17.0.1 warden
#
# The container listens on 0.0.0.0:8080. Warden refuses plain HTTP on a
# non-loopback address unless a TLS proxy is declared or it terminates TLS
# itself, so set one of:
#   -e WARDEN_SERVER__TRUSTED_PROXIES=<the proxy's address as the container sees it>
#   -e WARDEN_SERVER__TLS__CERT=/config/tls/fullchain.pem -e WARDEN_SERVER__TLS__KEY=/config/tls/privkey.pem
# A configuration file goes to /config/security.yaml (mount it read-only).
# State — keys, pepper, SQLite, the audit log — is in the /data volume.
#
# Checked without a Docker engine by `cargo test --test it deploy::dockerfile`
# (see docs/deploy.md, "Container").

# The toolchain CI tests with (Cargo.toml rust-version is the oldest that builds).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# The same build as README's `cargo build --release`, pinned to Cargo.lock.
COPY . .
RUN cargo build --release --locked --bin warden \
 && mkdir -p /out/data \
 && cp target/release/warden /out/warden

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/warden /usr/local/bin/warden
# An empty /data owned by the runtime user: a new named volume takes its owner.
COPY --from=build --chown=65532:65532 /out/data /data
# The working directory is /, so Warden's relative defaults land in the
# volume (data/keys.yaml -> /data/keys.yaml, data/warden.db, data/pepper) and
# config/security.yaml is /config/security.yaml.
WORKDIR /
ENV WARDEN_SERVER__LISTEN=0.0.0.0:8080 \
    WARDEN_LOGGING__SECURITY_LOG_FILE=/data/logs/security.log
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/warden", "health"]
ENTRYPOINT ["/usr/local/bin/warden"]
CMD ["serve"]
