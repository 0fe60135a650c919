# HAProxy from Debian's packages, for the example fleet.
ARG BASE_IMAGE=debian:sid-slim
FROM ${BASE_IMAGE}
ARG APT_OPTIONS=""
RUN apt-get ${APT_OPTIONS} update \
 && apt-get ${APT_OPTIONS} install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc /usr/share/man
COPY haproxy.cfg /etc/haproxy/haproxy.cfg
ENTRYPOINT ["/usr/sbin/haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
