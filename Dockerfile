# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run from a slim Debian image as a non-root
# user. The binary embeds the demo layer and color tables, so nothing else is copied.

FROM rust:1-bookworm AS build
WORKDIR /src
# Fetch dependencies in their own layer so source edits don't re-download them.
COPY Cargo.toml Cargo.lock ./
# Cargo refuses a manifest whose declared targets have no file, so every [[bench]] gets a stub.
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && for bench in $(awk '/^\[\[bench\]\]/ {b = 1; next} /^\[/ {b = 0} b && $1 == "name" {gsub(/"/, "", $3); print $3}' Cargo.toml); do \
         echo 'fn main() {}' > "benches/$bench.rs"; \
       done \
    && cargo fetch --locked
COPY src src
COPY data data
COPY benches benches
COPY config config
COPY web web
RUN cargo build --release --locked --bin twine-heatmap \
    && strip target/release/twine-heatmap

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --no-create-home twine \
    && mkdir -p /var/cache/twine-heatmap && chown twine:twine /var/cache/twine-heatmap
# The disk cache tier; mount a volume here to keep it across container restarts.
VOLUME /var/cache/twine-heatmap
COPY --from=build /src/target/release/twine-heatmap /usr/local/bin/twine-heatmap
COPY config/example.toml /etc/twine-heatmap/example.toml
USER twine
# Inside a container the server must listen on all interfaces to be reachable. No RUST_LOG:
# serve logs at info by default, and the health check stays quiet at its default (warn).
ENV TWINE_BIND=0.0.0.0:8080 \
    TWINE_CACHE_DIR=/var/cache/twine-heatmap
EXPOSE 8080
# The binary's own health check: no curl needed in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["twine-heatmap", "healthcheck", "--url", "http://127.0.0.1:8080/health"]
# actix-web stops gracefully on SIGTERM (docker stop) and SIGINT.
STOPSIGNAL SIGTERM
ENTRYPOINT ["twine-heatmap"]
CMD ["serve"]
