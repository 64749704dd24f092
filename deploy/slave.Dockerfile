# A slave (worker): a static binary on an empty image, run as nobody. Its
# health service on 127.0.0.1:4001 says SERVING while it is connected to the
# master.
FROM scratch
COPY slave /slave
USER 65534:65534
HEALTHCHECK --interval=5s --timeout=4s --start-period=5s --retries=3 \
  CMD ["/slave", "-healthcheck", "-health-addr", "127.0.0.1:4001"]
ENTRYPOINT ["/slave"]
CMD ["-master", "master:4000", "-authkey-file", "/run/secrets/authkey", "-health-addr", "127.0.0.1:4001"]
