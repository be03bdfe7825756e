# syntax=docker/dockerfile:1
# Build: docker build -t modelcat .
# Run:   docker run -p 8080:8080 -v modelcat-data:/data modelcat

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
# askama.toml tells the template compiler where the UI templates are (src/ui/templates).
COPY Cargo.toml Cargo.lock askama.toml ./
COPY sources/Cargo.toml sources/Cargo.toml
COPY index/Cargo.toml index/Cargo.toml
RUN mkdir -p src sources/src index/src \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs sources/src/lib.rs index/src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src sources/src index/src
COPY src src
COPY sources/src sources/src
COPY index/src index/src
RUN touch src/main.rs src/lib.rs sources/src/lib.rs index/src/lib.rs \
    && cargo build --release --locked \
    && cp target/release/modelcat /usr/local/bin/modelcat

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data modelcat \
    && mkdir -p /data && chown modelcat /data
COPY --from=build /usr/local/bin/modelcat /usr/local/bin/modelcat
# The samples keep their layout: paths in a config or sources file are relative to that file.
COPY config /etc/modelcat/config
COPY catalogs /etc/modelcat/catalogs
USER modelcat
WORKDIR /data
ENV MODELCAT_CONFIG=/etc/modelcat/config/modelcat.yaml \
    MODELCAT_DATA_DIR=/data \
    MODELCAT_LISTEN=0.0.0.0:8080
VOLUME ["/data"]
EXPOSE 8080
# Liveness: /healthz answers from the first second; readiness (/readyz) waits for the catalog to load.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 CMD ["modelcat", "healthcheck"]
ENTRYPOINT ["modelcat"]
CMD ["serve"]
