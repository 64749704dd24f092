# The master: a static binary on an empty image, run as nobody. Build with
# `make images` (it builds the binaries with CGO_ENABLED=0 first).
FROM scratch
COPY master /master
# The data directory (docker-compose.yml runs the master with
# -data-dir=/data on a named volume). A new named volume takes the owner of
# the directory it is mounted on, so /data must exist in the image, owned by
# the master's user; an image without a shell cannot mkdir, so the empty
# directory comes from the build context (scripts/images.sh makes it).
COPY --chown=65534:65534 data /data
USER 65534:65534
EXPOSE 4000
HEALTHCHECK --interval=5s --timeout=4s --start-period=5s --retries=3 \
  CMD ["/master", "-healthcheck", "-listen", ":4000"]
ENTRYPOINT ["/master"]
CMD ["-listen", ":4000", "-authkey-file", "/run/secrets/authkey"]
