# The sitefleet node image: the sitefleet binary, nginx and a minimal init
# on Debian. On a connected machine:
#
#   docker build -t sitefleet .
#
# Both images it starts from are build arguments, so the same file builds
# where no registry can be reached, from images made locally (see
# scripts/images.sh, which also passes APT_OPTIONS for a Debian mirror
# whose Release files have expired).
#
# nginx comes from Debian unstable (sid): 1.27.4 or later, which has
# ssl_certificate_cache.
ARG BUILD_IMAGE=golang:1.26-trixie
ARG BASE_IMAGE=debian:sid-slim

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/sitefleet ./cmd/sitefleet

FROM ${BASE_IMAGE}
ARG APT_OPTIONS=""
RUN apt-get ${APT_OPTIONS} update \
 && apt-get ${APT_OPTIONS} install -y --no-install-recommends nginx tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
    /usr/share/doc /usr/share/man /usr/share/locale /etc/nginx/sites-enabled/default \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/sitefleet --shell /usr/sbin/nologin sitefleet \
 && install -d -o sitefleet -g sitefleet -m 0755 /var/lib/sitefleet
COPY --from=build /out/sitefleet /usr/local/bin/sitefleet

# Configuration: SITEFLEET_* variables (SITEFLEET_CONFIG names a mounted
# YAML file). In a container the API listens on every address: publish it
# only where it should be reached, and give it TLS or a private network.
ENV SITEFLEET_DATA_DIR=/var/lib/sitefleet \
    SITEFLEET_API_LISTEN=0.0.0.0:7070 \
    SITEFLEET_WEB_HTTPLISTEN=:8080 \
    SITEFLEET_WEB_HTTPSLISTEN=:8443
VOLUME /var/lib/sitefleet
EXPOSE 8080 8443 7070
USER sitefleet
# tini reaps what nginx leaves behind and passes signals on: the first
# SIGTERM drains the node (shutdown.drain), a second stops it at once.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/sitefleet"]
CMD ["node"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=2 CMD ["/usr/local/bin/sitefleet", "ready"]
