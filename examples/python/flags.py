"""What producer.py and slave.py share with the Go programs' flags
(internal/masterflags): the master's address, the key and TLS."""
import argparse

import distq


def add(ap: argparse.ArgumentParser) -> None:
    """The master, key and TLS flags, named as the Go programs name them."""
    ap.add_argument("master", help="HOST:PORT of the master")
    ap.add_argument("--authkey-file", "-authkey-file", default=None,
                    help="the key file (else $DISTQ_AUTHKEY_FILE, else $DISTQ_AUTHKEY)")
    ap.add_argument("--tls-ca", "-tls-ca", default=None,
                    help="PEM CA file that signed the master's certificate; enables TLS")
    ap.add_argument("--tls-cert", "-tls-cert", default=None, help="PEM client certificate file for mutual TLS")
    ap.add_argument("--tls-key", "-tls-key", default=None, help="PEM private key file of --tls-cert")
    ap.add_argument("--tls-server-name", "-tls-server-name", default=None,
                    help="name to verify in the master's certificate (default: the host of master)")


def connect(args: argparse.Namespace, **kwargs) -> distq.Client:
    """Connect and log in as the flags say."""
    host, _, port = args.master.rpartition(":")
    return distq.connect((host.strip("[]"), int(port)), key_file=args.authkey_file, tls_ca=args.tls_ca,
                         tls_cert=args.tls_cert, tls_key=args.tls_key, tls_server_name=args.tls_server_name,
                         **kwargs)
