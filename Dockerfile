# Build a static binary, then ship it alone on a distroless base as a
# non-root user, with the production configuration (deploy/).
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t presence-bridge .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# main.version and main.revision are what --version prints and
# presence_bridge_build_info reports (the linker ignores -X for a variable
# that does not exist).
ARG VERSION=dev
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" -o /out/presence-bridge ./cmd/presence-bridge \
 && mkdir /out/state

# A static busybox, for its wget only: distroless has no shell and no HTTP
# client, and the health check needs one.
FROM busybox:1.37-musl AS busybox

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="presence-bridge" \
      org.opencontainers.image.description="Sets Microsoft Teams presence from phone systems, calendars and webhooks." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/presence-bridge/presence-bridge"
COPY --from=build /out/presence-bridge /usr/local/bin/presence-bridge
COPY --from=busybox /bin/busybox /usr/local/bin/busybox
COPY deploy/config.production.yaml /etc/presence-bridge/config.yaml
# The embedded NATS server's JetStream store (nats.embedded: true, the
# default store_dir data/nats is relative to this directory). Unused with
# external NATS servers, as in the production configuration.
COPY --from=build --chown=nonroot:nonroot /out/state /var/lib/presence-bridge
WORKDIR /var/lib/presence-bridge
VOLUME ["/var/lib/presence-bridge"]
USER nonroot:nonroot
# 8080: webhooks and /v1/events (http.listen). 9090: /metrics, the admin
# API and the status page (admin.listen); keep it off the internet.
# 5070: where a sipdialog source receives the PBX's NOTIFYs (its listen,
# as in config.example.yaml; UDP or TCP by its transport). Unused by the
# production configuration, which has no sipdialog source; publish it
# when you add one.
EXPOSE 8080 9090 5070/udp 5070/tcp
# Liveness only (/healthz); /readyz also fails while NATS is away, which is
# no reason to restart the container.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/presence-bridge"]
CMD ["run", "--config", "/etc/presence-bridge/config.yaml"]
