package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// certs writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all PEM, into dir.
type certs struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func makeCerts(t *testing.T) certs {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "distq test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		return write(cn+".pem", "CERTIFICATE", der), write(cn+"-key.pem", "EC PRIVATE KEY", keyDER)
	}
	c := certs{ca: write("ca.pem", "CERTIFICATE", caDER)}
	c.serverCert, c.serverKey = leaf(2, "master", x509.ExtKeyUsageServerAuth)
	c.clientCert, c.clientKey = leaf(3, "slave", x509.ExtKeyUsageClientAuth)
	return c
}

// Mutual TLS: the demo runs over encrypted connections, and the master does
// not warn about clear text.
func TestDemoOverMutualTLS(t *testing.T) {
	const n = 2000
	key := writeKey(t, testKey)
	c := makeCerts(t)
	m, addr := startMaster(t, key, "-demo", "2000", "-demo-progress", "log",
		"-tls-cert", c.serverCert, "-tls-key", c.serverKey, "-tls-client-ca", c.ca)
	for _, name := range []string{"slave-a", "slave-b"} {
		startSlave(t, name, addr, key, "-concurrency", "2",
			"-tls-ca", c.ca, "-tls-cert", c.clientCert, "-tls-key", c.clientKey)
	}
	checkExactlyOnce(t, m, n)
	if strings.Contains(m.output(), "TLS is off") {
		t.Errorf("master warned about clear text while serving TLS")
	}
}

// Without TLS the master says plainly that payloads travel unencrypted.
func TestPlainTextWarning(t *testing.T) {
	m, _ := startMaster(t, writeKey(t, testKey))
	m.waitLine("TLS is off: payloads travel unencrypted", 10*time.Second)
}
