# etcd from Debian's packages, for the example fleet.
ARG BASE_IMAGE=debian:sid-slim
FROM ${BASE_IMAGE}
ARG APT_OPTIONS=""
RUN apt-get ${APT_OPTIONS} update \
 && apt-get ${APT_OPTIONS} install -y --no-install-recommends etcd-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc /usr/share/man
ENTRYPOINT ["/usr/bin/etcd"]
