# Prometheus from Debian's package, on an empty image like ours: the binary,
# the C library it links (Debian builds it with cgo), its web UI's assets and
# the cluster's scrape config. scripts/images.sh gathers them from the host
# (apt-get install prometheus); nothing is pulled.
FROM scratch
COPY root/ /
COPY --chown=65534:65534 data /prometheus
USER 65534:65534
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus", "--web.listen-address=:9090"]
