# The producer (cmd/producer): puts N known tasks, reads and checks their
# results, and goes on through a master restart. A static binary on an
# empty image, run as nobody; docker-compose.yml runs it under the profile
# "producer".
FROM scratch
COPY producer /producer
USER 65534:65534
ENTRYPOINT ["/producer"]
CMD ["-master", "master:4000", "-authkey-file", "/run/secrets/authkey"]
