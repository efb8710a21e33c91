# Weir: build with Rust, run on a slim Debian with the Python 3.11 runtime plugins need.
# The steps live in scripts/ so CI runs the very same ones outside Docker.
#   docker build -t weir . && docker run -p 8181:8181 -v weir-data:/var/lib/weir weir

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN bash scripts/build-release.sh /out

FROM debian:bookworm-slim
COPY scripts/runtime-deps.sh /tmp/runtime-deps.sh
RUN bash /tmp/runtime-deps.sh && rm /tmp/runtime-deps.sh
COPY --from=build /out/bin/weir /usr/local/bin/weir
COPY --from=build /out/share/weir /usr/share/weir
WORKDIR /var/lib/weir
VOLUME /var/lib/weir
EXPOSE 8181
ENTRYPOINT ["weir"]
CMD ["serve", "--http-bind", "0.0.0.0:8181", "--data-dir", "/var/lib/weir/data", "--plugin-dir", "/var/lib/weir/plugins"]
