# syntax=docker/dockerfile:1

# Build stage: a static binary, no cgo.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
# VERSION (docker build --build-arg VERSION=$(git describe --always)) is what
# mcpjobs --version and MCP's serverInfo report; empty: from build info.
ARG VERSION=
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.buildVersion=${VERSION}" -o /out/mcpjobs ./cmd/mcpjobs

# Run stage: distroless, no shell, runs as the unprivileged user nonroot (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mcpjobs /mcpjobs
USER nonroot:nonroot
# 8080: MCP over HTTP (mcpjobs mcp --transport http); 8081: the simulator (mcpjobs sim).
EXPOSE 8080 8081 8090 9090
ENTRYPOINT ["/mcpjobs"]
