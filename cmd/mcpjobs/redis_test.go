package main

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

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
)

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // its certificate as PEM
}

// newTestCA makes a CA and writes its certificate to dir/name.pem.
func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name+".pem")
	writePEM(t, file, "CERTIFICATE", der)
	return &testCA{cert: cert, key: key, file: file}
}

// issueServer writes a server certificate for 127.0.0.1 and its key.
func (ca *testCA) issueServer(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "redis"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRedisTLS connects over rediss:// to a TLS-only redis-server whose
// certificate a private CA signed, through openRedis as every subcommand
// does, and enqueues and reads a job; without the CA, or with another one,
// openRedis fails saying to set REDIS_CA_FILE.
func TestRedisTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	certFile, keyFile := ca.issueServer(t, dir)
	srv := redistest.StartTLS(t, redistest.TLSFiles{CertFile: certFile, KeyFile: keyFile, CAFile: ca.file})
	ctx := t.Context()

	// REDIS_CA_FILE through the configuration, as the binary reads it.
	a, err := newApp("mcp", nil, os.Stdout, os.Stderr, envFunc(map[string]string{"REDIS_URL": srv.URL, "REDIS_CA_FILE": ca.file, "LOG_LEVEL": "error"}))
	if err != nil {
		t.Fatal(err)
	}
	rdb, err := openRedis(ctx, a.cfg.RedisURL, a.cfg.RedisCAFile)
	if err != nil {
		t.Fatalf("openRedis %s with REDIS_CA_FILE: %v", srv.URL, err)
	}
	defer rdb.Close()
	jc := store.NewClient(rdb, store.Options{})
	defer jc.Close()
	v, err := jc.Enqueue(ctx, "alice", jobs.AspectPayload{CoverageID: "dem_30m", BBox: []float64{116, 39.8, 116.1, 39.9}})
	if err != nil {
		t.Fatalf("enqueue over TLS: %v", err)
	}
	if got, err := jc.Get(ctx, "alice", v.JobID); err != nil || got.State != jobs.StatePending {
		t.Fatalf("get over TLS = %+v, %v; want the job pending", got, err)
	}

	other := newTestCA(t, dir, "other-ca")
	for _, tt := range []struct{ name, caFile string }{
		{"another CA", other.file},
		{"the system's roots", ""},
	} {
		_, err := openRedis(ctx, srv.URL, tt.caFile)
		if err == nil || !strings.Contains(err.Error(), "not trusted") || !strings.Contains(err.Error(), "REDIS_CA_FILE") {
			t.Errorf("openRedis trusting %s: %v; want an error saying the certificate is not trusted and to set REDIS_CA_FILE", tt.name, err)
		}
	}
}

// TestOpenRedisRefuses: URLs and CA files that cannot work answer an
// error that says what to do, before any connection.
func TestOpenRedisRefuses(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := newTestCA(t, dir, "ca")
	for _, tt := range []struct{ url, caFile, want string }{
		{"redis-sentinel://127.0.0.1:26379", "", "?master=NAME"},
		{"redis://127.0.0.1:1", ca.file, "use rediss://"},
		{"redis-sentinel://127.0.0.1:26379?master=m", ca.file, "rediss:// URLs only"},
		{"rediss://127.0.0.1:1", notPEM, "no PEM certificate"},
		{"rediss://127.0.0.1:1", filepath.Join(dir, "missing.pem"), "REDIS_CA_FILE"},
		{"http://127.0.0.1:1", "", "REDIS_URL"},
	} {
		_, err := openRedis(t.Context(), tt.url, tt.caFile)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("openRedis(%s, %q) = %v; want an error containing %q", tt.url, tt.caFile, err, tt.want)
		}
	}
}

// TestRedisSentinel connects through a Sentinel as REDIS_URL
// redis-sentinel://HOST:PORT?master=NAME, enqueues a job, kills the
// primary with SIGKILL and reads the job from the replica the Sentinel
// promotes, through the same client; a master name the Sentinel does not
// know fails at start.
func TestRedisSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("a Sentinel failover takes a few seconds")
	}
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	s := redistest.StartSentinel(t, primary, "mcpjobs")
	ctx := t.Context()
	if _, err := openRedis(ctx, "redis-sentinel://"+s.Addr+"?master=other", ""); err == nil {
		t.Error("openRedis with a master name the Sentinel does not know: no error")
	}
	rdb, err := openRedis(ctx, s.URL, "")
	if err != nil {
		t.Fatalf("openRedis %s: %v", s.URL, err)
	}
	defer rdb.Close()
	jc := store.NewClient(rdb, store.Options{WaitReplicas: 1})
	defer jc.Close()
	v, err := jc.Enqueue(ctx, "alice", jobs.AspectPayload{CoverageID: "dem_30m", BBox: []float64{116, 39.8, 116.1, 39.9}})
	if err != nil {
		t.Fatalf("enqueue through the Sentinel with a replica acknowledging: %v", err)
	}
	primary.Kill(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := jc.Get(ctx, "alice", v.JobID)
		if err == nil {
			if got.State != jobs.StatePending {
				t.Fatalf("after the failover the job is %s; want pending", got.State)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job is not readable 30 s after the primary was killed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	role, err := replica.Client(t).Do(ctx, "ROLE").Slice()
	if err != nil || len(role) == 0 || role[0] != "master" {
		t.Fatalf("ROLE of the replica after the failover = %v, %v; want master", role, err)
	}
}
