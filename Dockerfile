# Builds the plugin's rootfs for users who build with Docker:
#   docker build -t ipvlan-bgp-rootfs .
#   mkdir -p build/plugin/rootfs && cp config.json build/plugin/
#   docker export "$(docker create ipvlan-bgp-rootfs)" | tar -x -C build/plugin/rootfs
#   docker plugin create ipvlan-bgp build/plugin
# `make plugin` builds the same directory without Docker.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o /out/ipvlan-bgp ./plugin \
 && mkdir -p /out/state /out/run/docker/plugins /out/tmp

FROM scratch
COPY --from=build /out/ /
ENTRYPOINT ["/ipvlan-bgp"]
