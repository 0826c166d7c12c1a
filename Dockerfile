# Build a static binary, then ship it alone on a distroless base as a
# non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/presence-bridge ./cmd/presence-bridge

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/presence-bridge /usr/local/bin/presence-bridge
COPY config.example.yaml /etc/presence-bridge/config.yaml
USER nonroot:nonroot
WORKDIR /home/nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/presence-bridge"]
CMD ["--config", "/etc/presence-bridge/config.yaml"]
