# The master: a static binary on an empty image, run as nobody. Build with
# `make images` (it builds the binaries with CGO_ENABLED=0 first).
FROM scratch
COPY master /master
USER 65534:65534
EXPOSE 4000
HEALTHCHECK --interval=5s --timeout=4s --start-period=5s --retries=3 \
  CMD ["/master", "-healthcheck", "-listen", ":4000"]
ENTRYPOINT ["/master"]
CMD ["-listen", ":4000", "-authkey-file", "/run/secrets/authkey"]
