// Package masterflags holds the command-line flags, and the environment,
// by which a program that is a client of a master (the slave, the
// producer, the distq tool) names its master, finds the authkey and sets
// up TLS, so that they all read them the same way.
package masterflags

import (
	"flag"

	"github.com/distq/distq"
	"github.com/distq/distq/internal/auth"
	"github.com/distq/distq/internal/tlsconfig"
)

// DefaultMaster is the master's address when -master is not given.
const DefaultMaster = "127.0.0.1:4000"

// Flags are the client's view of its master: its address, the authkey and
// TLS.
type Flags struct {
	Master        string // -master host:port
	AuthkeyFile   string // -authkey-file; else $DISTQ_AUTHKEY_FILE, else $DISTQ_AUTHKEY
	TLSCA         string // -tls-ca: enables TLS
	TLSCert       string // -tls-cert, with -tls-key: a client certificate for mutual TLS
	TLSKey        string
	TLSServerName string // -tls-server-name
}

// Register defines the flags on fs. A field already set is the flag's
// default, so registering the same Flags on a second FlagSet keeps what
// the first one parsed.
func (f *Flags) Register(fs *flag.FlagSet) {
	if f.Master == "" {
		f.Master = DefaultMaster
	}
	fs.StringVar(&f.Master, "master", f.Master, "the master's `host:port`")
	fs.StringVar(&f.AuthkeyFile, "authkey-file", f.AuthkeyFile, "`file` holding the shared authkey (else $"+auth.EnvKeyFile+" or $"+auth.EnvKey+")")
	fs.StringVar(&f.TLSCA, "tls-ca", f.TLSCA, "PEM CA `file` that signed the master's certificate; enables TLS")
	fs.StringVar(&f.TLSCert, "tls-cert", f.TLSCert, "PEM client certificate `file` for mutual TLS")
	fs.StringVar(&f.TLSKey, "tls-key", f.TLSKey, "PEM private key `file` of -tls-cert")
	fs.StringVar(&f.TLSServerName, "tls-server-name", f.TLSServerName, "name to verify in the master's certificate (default: the host of -master)")
}

// Options loads the authkey (from -authkey-file, $DISTQ_AUTHKEY_FILE or
// $DISTQ_AUTHKEY, in that order) and the TLS files, and returns the
// client options with them. The caller adds its logger.
func (f *Flags) Options() (distq.Options, error) {
	key, err := auth.LoadKey(f.AuthkeyFile)
	if err != nil {
		return distq.Options{}, err
	}
	tlsCfg, err := tlsconfig.Client(f.TLSCA, f.TLSCert, f.TLSKey, f.TLSServerName)
	if err != nil {
		return distq.Options{}, err
	}
	return distq.Options{AuthKey: key, TLS: tlsCfg}, nil
}
