package rest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// selfSigned makes a self-signed certificate, as incusd and `incus remote
// generate-certificate` do, for dnsName (none when empty) and ips.
func selfSigned(t *testing.T, dnsName string, ips ...net.IP) (certPEM, keyPEM string, cert tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "berth test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  ips,
	}
	if dnsName != "" {
		tmpl.DNSNames = []string{dnsName}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	cert, err = tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM, cert
}

// A remote is reached with the client's certificate, and trusted only when
// it presents the certificate given as BERTH_INCUS_SERVER_CERT: under that
// certificate's own name, or the host's. REST calls and websockets alike.
func TestRemoteTLS(t *testing.T) {
	clientCert, clientKey, _ := selfSigned(t, "")
	clientX509, _ := pem.Decode([]byte(clientCert))
	tests := []struct {
		name      string
		serverDNS string   // the server certificate's DNS name
		ips       []net.IP // and its addresses
		pin       bool     // give the server's certificate
		withCert  bool     // present the client certificate
		wantOK    bool
	}{
		{"pinned, named by its DNS name", "incus.example", nil, true, true, true},
		{"pinned, named by the host's address", "", []net.IP{net.IPv4(127, 0, 0, 1)}, true, true, true},
		{"not pinned: not trusted", "incus.example", nil, false, true, false},
		{"no client certificate: refused", "incus.example", nil, true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serverCert, _, serverTLS := selfSigned(t, tt.serverDNS, tt.ips...)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if len(r.TLS.PeerCertificates) == 0 || string(r.TLS.PeerCertificates[0].Raw) != string(clientX509.Bytes) {
					reply(w, 403, "error", nil, "not authorized")
					return
				}
				if r.URL.Path == "/1.0/events" {
					conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
					if err == nil {
						conn.Close()
					}
					return
				}
				reply(w, 200, "sync", map[string]any{"environment": map[string]any{"server_version": "6.0.4"}}, "")
			}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverTLS}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS13}
			srv.StartTLS()
			defer srv.Close()

			cfg := TLS{ClientCert: clientCert, ClientKey: clientKey}
			if tt.pin {
				cfg.ServerCert = serverCert
			}
			if !tt.withCert {
				cfg.ClientCert, cfg.ClientKey = "", ""
			}
			c, err := Remote(srv.URL+"/", cfg, Options{UserAgent: "berth/test"})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := c.Server(ctx)
			if tt.wantOK != (err == nil) {
				t.Fatalf("Server: %v, want ok %v", err, tt.wantOK)
			}
			if !tt.wantOK {
				return
			}
			if s.Environment.ServerVersion != "6.0.4" || !c.Remote() {
				t.Errorf("Server = %+v, Remote %v", s, c.Remote())
			}
			conn, err := c.Events(ctx, EventTypeLifecycle)
			if err != nil {
				t.Fatalf("Events over wss: %v", err)
			}
			conn.Close()
		})
	}
	if _, err := Remote("http://plain:8443", TLS{}, Options{}); err == nil {
		t.Error("Remote over plain http: no error")
	}
}
