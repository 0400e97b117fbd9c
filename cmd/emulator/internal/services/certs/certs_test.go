package certs

import (
	"crypto/x509"
	"testing"
)

func TestSelfSignedVerifiesForItsNames(t *testing.T) {
	c, err := SelfSigned("ASE ase1", "*.ase1.p.azurewebsites.net", "ase1.p.azurewebsites.net", "10.0.1.4")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.Leaf)
	for _, name := range []string{"app1.ase1.p.azurewebsites.net", "ase1.p.azurewebsites.net", "10.0.1.4"} {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("certificate does not verify for %s: %v", name, err)
		}
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: "app1.ase2.p.azurewebsites.net", Roots: pool}); err == nil {
		t.Error("certificate for ase1 verifies for an ase2 app")
	}
	if _, err := SelfSigned("x"); err == nil {
		t.Error("a certificate with no name was made")
	}
}
