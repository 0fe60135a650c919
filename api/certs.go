package api

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/state"
	"github.com/sitefleet/sitefleet/tls"
)

// Certificates is the certificate work the handlers hand on (tls.Service).
type Certificates interface {
	// Import checks a chain and key (and that they cover domains, if
	// given), seals the key and stores the record under id.
	Import(ctx context.Context, id string, chainPEM, keyPEM []byte, domains []string) (state.Certificate, error)
	// Pending returns the ACME names being obtained that have no
	// certificate among have yet.
	Pending(ctx context.Context, have []state.Certificate) ([]tls.ACMEStatus, error)
	// CheckRecords checks the records of a state import against the
	// cluster key.
	CheckRecords(certs []state.Certificate) error
}

// CertRecords reads and removes certificate records.
type CertRecords interface {
	GetCertificate(ctx context.Context, id string) (state.Certificate, error)
	ListCertificates(ctx context.Context) ([]state.Certificate, error)
	// DeleteCertificate refuses a certificate that a site serves.
	DeleteCertificate(ctx context.Context, id string, guard ...state.Guard) error
}

// expiringSoon is when a certificate's status turns to "expiring".
const expiringSoon = 30 * 24 * time.Hour

// certInfo is the public view of a record: never any key material.
func certInfo(c state.Certificate, withChain bool, now time.Time) client.CertificateInfo {
	status := "valid"
	switch {
	case now.After(c.NotAfter):
		status = "expired"
	case now.Before(c.NotBefore):
		status = "not yet valid"
	case c.NotAfter.Sub(now) < expiringSoon:
		status = "expiring"
	}
	info := client.CertificateInfo{ID: c.ID, Type: string(c.Type), Domains: c.Domains, NotBefore: c.NotBefore,
		NotAfter: c.NotAfter, Issuer: c.Issuer, Serial: c.Serial, Status: status}
	if withChain {
		info.ChainPEM = c.ChainPEM
	}
	return info
}

// pendingInfo is the public view of an ACME name being obtained.
func pendingInfo(st tls.ACMEStatus) client.CertificateInfo {
	info := client.CertificateInfo{ID: state.AutoCertID(state.CertACME, st.Name), Type: string(state.CertACME),
		Domains: []string{st.Name}, Status: st.State, Error: st.Error}
	if !st.NextAttempt.IsZero() {
		next := st.NextAttempt
		info.NextAttempt = &next
	}
	return info
}

func (s *server) listCertificates(w http.ResponseWriter, r *http.Request) error {
	certs, err := s.certs.ListCertificates(r.Context())
	if err != nil {
		return err
	}
	out := client.CertificateList{Certificates: []client.CertificateInfo{}}
	now := time.Now()
	for _, c := range certs {
		out.Certificates = append(out.Certificates, certInfo(c, false, now))
	}
	pending, err := s.opts.Certificates.Pending(r.Context(), certs)
	if err != nil {
		return err
	}
	for _, st := range pending {
		out.Certificates = append(out.Certificates, pendingInfo(st))
	}
	return writeJSON(w, http.StatusOK, 0, out)
}

func (s *server) getCertificate(w http.ResponseWriter, r *http.Request) error {
	c, err := s.certs.GetCertificate(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c.Revision, certInfo(c, true, time.Now()))
}

func (s *server) importCertificate(w http.ResponseWriter, r *http.Request) error {
	var req client.CertImport
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	c, err := s.opts.Certificates.Import(r.Context(), req.ID, []byte(req.Chain), []byte(req.Key), req.Domains)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, c.Revision, certInfo(c, true, time.Now()))
}

func (s *server) deleteCertificate(w http.ResponseWriter, r *http.Request) error {
	id := chi.URLParam(r, "id")
	if err := s.certs.DeleteCertificate(r.Context(), id); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, 0, map[string]string{"deleted": id})
}
